#!/usr/bin/env python3
"""endpoints / hotspots / functions against a generated payments corpus.

Part of the e2e tier. Generates a corpus with tests/corpus/gen_corpus.py,
ingests it in two halves (refreshing in between, so the summaries are
maintained incrementally across ingests). The queries only read: after
the second half they answer from the summaries as they are, say on
stderr how many traces are not counted yet and leave the store file
byte for byte as it was; `refresh` counts them. Then it checks against
the corpus's own truth, never against hoptrace:
  - endpoints --exact: count, incomplete (stalled) count, end-to-end
    p50/p90/p99 (nearest rank over the complete requests) within 1 ms of
    truth.json, sync p50/p99 within 1 ms of the stage segments' durations;
  - endpoints (histograms): every quantile within 0.2 % of the exact one;
  - hotspots --percentile 0 / 90: shares sum to 1 +- 0.001, the hop waits
    ranked as the truth's summed waits; folded lines add up to total_ms;
  - functions: invocation and cold-start counts per function from the
    REPORT lines in the logs; --since/--until narrow both commands.
usage: agg_corpus.py HOPTRACE REPO_ROOT [N SEED [STREAM_BATCH ORDER]]
"""
import base64
import collections
import gzip
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import tempfile

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what)


def nearest_rank(vals, p):
    v = sorted(vals)
    r = max(1, min(len(v), math.ceil(p / 100.0 * len(v) - 1e-9)))
    return v[r - 1]


def run(hop, db, *args, ok=(0,)):
    p = subprocess.run([hop, "--db", db] + list(args), capture_output=True, text=True)
    if p.returncode not in ok:
        raise SystemExit("%s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def log_messages(corp):
    msgs = [json.loads(line) for line in open(os.path.join(corp, "logs-cwl.ndjson"))]
    k = json.load(open(os.path.join(corp, "logs-kinesis.json")))
    for r in k["Records"]:
        msgs.append(json.loads(gzip.decompress(base64.b64decode(r["Data"]))))
    return [m for m in msgs if m.get("messageType") == "DATA_MESSAGE"]


def stage_durations(corp):
    out = {}
    for line in open(os.path.join(corp, "segments.ndjson")):
        line = line.strip()
        if not line.startswith("{") or '"format"' in line[:20]:
            continue
        d = json.loads(line)
        if d.get("origin") == "AWS::ApiGateway::Stage" and "end_time" in d:
            out[d["id"]] = round((d["end_time"] - d["start_time"]) * 1e6) / 1000.0
    return list(out.values())


def split_file(src, a, b):
    """First half of the lines into a, the rest into b (ingested later)."""
    lines = open(src).readlines()
    # segments.ndjson is daemon datagrams: a header line then a document
    half = (len(lines) // 2) & ~1
    open(a, "w").writelines(lines[:half])
    open(b, "w").writelines(lines[half:])


def main():
    hop, root = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 11
    sb = sys.argv[5] if len(sys.argv) > 5 else "1"
    order = sys.argv[6] if len(sys.argv) > 6 else "stage"
    with tempfile.TemporaryDirectory() as tmp:
        corp = os.path.join(tmp, "corpus")
        subprocess.run([sys.executable, os.path.join(root, "tests/corpus/gen_corpus.py"),
                        "--requests", str(n), "--seed", str(seed), "--out", corp,
                        "--stream-batch", sb, "--order", order],
                       check=True, stderr=subprocess.DEVNULL)
        truth = json.load(open(os.path.join(corp, "truth.json")))["requests"]
        db = os.path.join(tmp, "db")
        p1, p2 = os.path.join(tmp, "one"), os.path.join(tmp, "two")
        os.makedirs(p1)
        os.makedirs(p2)
        # the consumers' half first: their requests are completed later
        split_file(os.path.join(corp, "segments.ndjson"),
                   os.path.join(p2, "segments.ndjson"), os.path.join(p1, "segments.ndjson"))
        for f in ("logs-cwl.ndjson", "logs-kinesis.json"):
            os.link(os.path.join(corp, f), os.path.join(p2, f))
        p = subprocess.run([hop, "--db", db, "ingest", p1], capture_output=True, text=True)
        check(p.returncode == 0, "ingest exits %d: %s" % (p.returncode, p.stderr[-300:]))
        check(json.loads(run(hop, db, "stats", "--format", "json"))["aggregates_pending"] == 0,
              "a plain ingest leaves its summaries current when it exits")
        # and its summary line says what that took (written before it exits)
        m = re.search(r"; (\d+) request summaries written in (\d+) slices? \((\d+\.\d{3}) s\)$",
                      p.stderr.strip())
        check(m and int(m.group(1)) > 0 and int(m.group(2)) >= 1,
              "the summary line tells the summaries written: %r" % p.stderr[-300:])
        p = subprocess.run([hop, "--db", db, "refresh"], capture_output=True, text=True)
        check(p.returncode == 0 and re.search(r"refreshed 0 traces: 0 request summaries written",
                                              p.stderr),
              "nothing left for refresh after a plain ingest: %r" % p.stderr)
        # a bulk load that leaves the summaries to refresh; a plain ingest
        # brings them current before it exits (checked below)
        p = subprocess.run([hop, "--db", db, "ingest", "--no-aggregates", p2],
                           capture_output=True, text=True)
        check(p.returncode == 0 and "request summaries" not in p.stderr,
              "--no-aggregates writes no summaries and says none: %r" % p.stderr[-300:])

        # read-only queries over a store whose summaries are behind
        def digest():
            return hashlib.sha256(open(os.path.join(db, "data.mdb"), "rb").read()).hexdigest()
        pend = json.loads(run(hop, db, "stats", "--format", "json"))["aggregates_pending"]
        check(pend > 0, "the second ingest leaves traces to count")
        before = digest()
        for args in (["endpoints", "--format", "json"], ["hotspots", "POST /orders", "--percentile", "0"],
                     ["functions"]):
            p = subprocess.run([hop, "--db", db] + args, capture_output=True, text=True)
            # the route may not be known yet: hotspots then exits 1
            check(p.returncode in ((0, 1) if args[0] == "hotspots" else (0,)),
                  "%s exits %d on a store that is behind" % (args[0], p.returncode))
            note = "%d ingested traces are not counted" % pend
            if args[0] != "functions":
                check(note in p.stderr, "%s says %r on stderr, got %r" % (args[0], note, p.stderr))
        behind = json.loads(run(hop, db, "endpoints", "--format", "json"))
        check(digest() == before, "queries leave the store file unchanged")
        check(json.loads(run(hop, db, "stats", "--format", "json"))["aggregates_pending"] == pend,
              "queries consume nothing")
        p = subprocess.run([hop, "--db", db, "refresh"], capture_output=True, text=True)
        m = re.search(r"refreshed (\d+) traces: (\d+) request summaries written, \d+ merged into "
                      r"other requests \((\d+) slices in (\d+\.\d{3}) s, the longest", p.stderr)
        check(p.returncode == 0 and m and int(m.group(1)) == pend and int(m.group(2)) > 0 and
              float(m.group(4)) > 0, "refresh says what it did and how long: %r" % p.stderr)
        check(json.loads(run(hop, db, "stats", "--format", "json"))["aggregates_pending"] == 0,
              "refresh counts every trace")
        p = subprocess.run([hop, "--db", db, "endpoints"], capture_output=True, text=True)
        check("not counted" not in p.stderr, "no note once refreshed: %r" % p.stderr)
        check(json.loads(run(hop, db, "endpoints", "--format", "json")) != behind,
              "the second half was not counted before refresh")

        ex = json.loads(run(hop, db, "endpoints", "--exact", "--format", "json"))
        check(len(ex["routes"]) == 1, "one route, got %s" % [r["route"] for r in ex["routes"]])
        r = ex["routes"][0]
        check((r["route"], r["api"], r["stage"]) == ("POST /orders", "abc123", "live")
              or r["route"] == "POST /orders", "route name %r" % r)
        done = [t["duration_ms"] for t in truth if not t["stalled"]]
        check(r["count"] == len(truth), "count %d want %d" % (r["count"], len(truth)))
        check(r["incomplete"] == len(truth) - len(done),
              "incomplete %d want %d" % (r["incomplete"], len(truth) - len(done)))
        for p in (50, 90, 99):
            want = nearest_rank(done, p)
            got = r["e2e_ms"]["p%d" % p]
            check(abs(got - want) <= 1.0, "e2e p%d %.3f want %.3f" % (p, got, want))
        check(abs(r["e2e_ms"]["max"] - max(done)) <= 1.0, "e2e max")
        sync = stage_durations(corp)
        check(len(sync) == len(truth), "stage segments %d" % len(sync))
        for p in (50, 99):
            want = nearest_rank(sync, p)
            got = r["sync_ms"]["p%d" % p]
            check(abs(got - want) <= 1.0, "sync p%d %.3f want %.3f" % (p, got, want))

        hist = json.loads(run(hop, db, "endpoints", "--format", "json"))
        h = hist["routes"][0]
        check(h["count"] == r["count"] and h["incomplete"] == r["incomplete"],
              "histogram counts %d/%d" % (h["count"], h["incomplete"]))
        worst = 0.0
        for k in ("sync_ms", "e2e_ms"):
            for p in ("p50", "p90", "p99", "max"):
                e, a = r[k][p], h[k][p]
                worst = max(worst, abs(a - e) / e)
                check(abs(a - e) <= 0.002 * e + 0.001, "histogram %s %s %.3f vs exact %.3f" % (k, p, a, e))
        print("histogram worst relative error %.5f %%" % (worst * 100))

        # a second run answers the same; the text form names the route
        again = json.loads(run(hop, db, "endpoints", "--exact", "--format", "json"))
        check(again == ex, "a second run answers the same")
        check("POST /orders" in run(hop, db, "endpoints"), "text output names the route")

        # hotspots: shares and the ranking of the hop waits
        waits = collections.Counter()
        for t in truth:
            if not t["stalled"]:
                for hp in t["hops"]:
                    waits[(hp["via"], hp["resource"])] += hp["wait_ms"]
        want_rank = [k for k, _ in waits.most_common()]
        hs = json.loads(run(hop, db, "hotspots", "POST /orders", "--percentile", "0",
                            "--format", "json"))
        check(hs["requests"] == len(truth), "hotspots p0 requests %d" % hs["requests"])
        check(abs(sum(i["share"] for i in hs["items"]) - 1) <= 0.001, "shares sum to 1")
        got_rank = [(i["via"], i["resource"]) for i in hs["items"] if i["kind"] == "wait"]
        check(got_rank == want_rank, "wait ranking %s want %s" % (got_rank, want_rank))
        h90 = json.loads(run(hop, db, "hotspots", "POST /orders", "--percentile", "90",
                             "--format", "json"))
        want90 = sum(1 for d in done if d >= nearest_rank(done, 90))
        check(h90["requests"] == want90, "p90 requests %d want %d" % (h90["requests"], want90))
        check(abs(sum(i["share"] for i in h90["items"]) - 1) <= 0.001, "p90 shares sum to 1")
        folded = run(hop, db, "hotspots", "POST /orders", "--percentile", "90", "--format", "folded")
        tot = 0
        for line in folded.splitlines():
            frames, val = line.rsplit(" ", 1)
            check(frames.startswith("POST /orders;") and val.isdigit(), "folded line %r" % line)
            tot += int(val)
        check(abs(tot / 1000.0 - h90["total_ms"]) <= 0.01, "folded adds up to total_ms")
        check(len(folded.splitlines()) == len(h90["items"]), "one folded line per item")
        run(hop, db, "hotspots", "GET /nothing", ok=(1,))

        # functions: counts from the REPORT lines
        rep, cold = collections.Counter(), collections.Counter()
        seen = set()
        for m in log_messages(corp):
            fn = m["logGroup"].rsplit("/", 1)[-1]
            for e in m["logEvents"]:
                t = e["message"]
                if t.startswith("REPORT RequestId:"):
                    rid = t.split()[2]
                    if (fn, rid) not in seen:
                        seen.add((fn, rid))
                        rep[fn] += 1
                        cold[fn] += "Init Duration" in t
        fj = json.loads(run(hop, db, "functions", "--format", "json"))
        got = {f["name"]: (f["invocations"], f["cold_starts"]) for f in fj["functions"]}
        want = {k: (rep[k], cold[k]) for k in rep}
        check(got == want, "functions %s want %s" % (got, want))
        for f in fj["functions"]:
            check(f["gb_seconds"] > 0 and f["cost_usd"] > 0, "cost of %s" % f["name"])
            check(f["memory_mb"] == 512, "memory of %s" % f["name"])

        # a window: the first half of the requests by start
        starts = sorted(t["start_us"] for t in truth)
        mid = starts[len(starts) // 2]
        since, until = "%.6f" % (starts[0] / 1e6), "%.6f" % ((mid - 1) / 1e6)
        w = json.loads(run(hop, db, "endpoints", "--exact", "--format", "json",
                           "--since", since, "--until", until))
        check(w["routes"][0]["count"] == len(starts) // 2,
              "window count %d want %d" % (w["routes"][0]["count"], len(starts) // 2))
        run(hop, db, "endpoints", "--since", "yesterday", ok=(2,))
        run(hop, db, "hotspots", ok=(2,))
        for c in ("endpoints", "hotspots", "functions", "refresh"):
            check("usage" in run(hop, db, c, "--help"), c + " --help")
    print("agg_corpus: %s" % ("ok" if not FAILS else "%d failures" % len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
