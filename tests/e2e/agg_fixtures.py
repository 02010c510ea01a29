#!/usr/bin/env python3
"""endpoints / hotspots / functions / fan-out against tests/agg/ fixtures.

Part of the e2e tier. tests/agg/gen_agg.py builds the fixture and its
expected answers from the durations it chose (hand-computable: nearest
rank, critical path by hand); this checks that the committed fixture is
the generator's output, then ingests it logs first and segments in two
later runs (`refresh` after each, as the ingest writer's update would,
so requests change root and complete after they were first summarized),
and compares:
endpoints --exact exactly, the histogram answer within 0.2 %, hotspots
JSON and its folded output line by line, the fan-out of the scheduled job
in `trace --format json` and its text view, functions; then ingests
everything again and expects the same answers. Last, the trace fixtures
under fixtures/ whose requests are all complete: one route each, whose
end-to-end percentiles are those of the durations they expect (a write
to a DynamoDB table nobody reads a stream of is not pending).
usage: agg_fixtures.py HOPTRACE REPO_ROOT
"""
import filecmp
import json
import math
import os
import subprocess
import sys
import tempfile

FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL: " + what)


def run(hop, db, *args, ok=(0,)):
    p = subprocess.run([hop, "--db", db] + list(args), capture_output=True, text=True)
    if p.returncode not in ok:
        raise SystemExit("%s exited %d: %s" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


def same(got, want, path="", tol=0.0005):
    """want's keys must be in got with equal values (numbers within tol)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return ["%s: %r is not an object" % (path, got)]
        out = []
        for k, v in want.items():
            if k not in got:
                out.append("%s.%s missing" % (path, k))
            else:
                out += same(got[k], v, "%s.%s" % (path, k), tol)
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return ["%s: %r vs %r" % (path, got, want)]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += same(g, w, "%s[%d]" % (path, i), tol)
        return out
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return [] if got == want else ["%s: %r want %r" % (path, got, want)]
    if isinstance(got, (int, float)) and not isinstance(got, bool) and abs(got - want) <= tol:
        return []
    return ["%s: %r want %r" % (path, got, want)]


def main():
    hop, root = sys.argv[1], sys.argv[2]
    fx = os.path.join(root, "tests", "agg", "routes")
    with tempfile.TemporaryDirectory() as tmp:
        gen = os.path.join(tmp, "gen")
        subprocess.run([sys.executable, os.path.join(root, "tests", "agg", "gen_agg.py"), gen],
                       check=True)
        for f in sorted(os.listdir(gen)):
            check(filecmp.cmp(os.path.join(gen, f), os.path.join(fx, f), shallow=False),
                  "tests/agg/routes/%s differs from gen_agg.py's output (rerun it)" % f)
        exp = {n: json.load(open(os.path.join(fx, "expected-%s.json" % n)))
               for n in ("endpoints", "hotspots", "fanout", "functions")}
        folded = open(os.path.join(fx, "expected-hotspots.folded")).read().splitlines()

        db = os.path.join(tmp, "db")
        segs = open(os.path.join(fx, "segments.ndjson")).readlines()
        half = len(segs) // 2
        a, b = os.path.join(tmp, "a.ndjson"), os.path.join(tmp, "b.ndjson")
        open(a, "w").writelines(segs[half:])   # the later documents first
        open(b, "w").writelines(segs[:half])
        run(hop, db, "ingest", "--quiet", os.path.join(fx, "logs-cwl.ndjson"))
        run(hop, db, "refresh")
        run(hop, db, "ingest", "--quiet", a)
        run(hop, db, "refresh")
        run(hop, db, "ingest", "--quiet", b)
        run(hop, db, "refresh")

        def answers():
            ep = json.loads(run(hop, db, "endpoints", "--exact", "--format", "json"))
            for e in same(ep, exp["endpoints"], "endpoints"):
                check(False, e)
            hist = json.loads(run(hop, db, "endpoints", "--format", "json"))
            check([(r["route"], r["count"], r["incomplete"], r["errors"], r["faults"],
                    r["throttles"]) for r in hist["routes"]] ==
                  [(r["route"], r["count"], r["incomplete"], r["errors"], r["faults"],
                    r["throttles"]) for r in exp["endpoints"]["routes"]], "histogram counts")
            for h, e in zip(hist["routes"], exp["endpoints"]["routes"]):
                for k in ("sync_ms", "e2e_ms"):
                    for p, v in e[k].items():
                        g = h[k][p]
                        check((v is None and g is None) or
                              (v is not None and g is not None and abs(g - v) <= 0.002 * v + 0.001),
                              "histogram %s %s %s: %r vs exact %r" % (e["route"], k, p, g, v))
            hs = json.loads(run(hop, db, "hotspots", "nightly-report", "--percentile", "0",
                                "--format", "json"))
            for e in same(hs, exp["hotspots"], "hotspots"):
                check(False, e)
            got = run(hop, db, "hotspots", "nightly-report", "--percentile", "0",
                      "--format", "folded").splitlines()
            check(len(got) == len(folded), "folded: %d lines want %d" % (len(got), len(folded)))
            for i, (g, w) in enumerate(zip(got, folded)):
                check(g == w, "folded line %d: %r want %r" % (i + 1, g, w))
            fn = json.loads(run(hop, db, "functions", "--format", "json"))
            for e in same(fn, exp["functions"], "functions", tol=1e-9):
                check(False, e)

        answers()
        # the route's tail: p99 of 5 requests is the slowest one
        o99 = json.loads(run(hop, db, "hotspots", "GET /orders/{orderId}", "--format", "json"))
        check(o99["requests"] == 1 and abs(sum(i["share"] for i in o99["items"]) - 1) < 0.001,
              "GET /orders p99 hotspots: %r" % o99)
        # a route exactly as endpoints' text prints it, "ROUTE (API/STAGE)"
        ep_text = run(hop, db, "endpoints")
        line = next(l for l in ep_text.splitlines() if l.startswith("GET /orders/{orderId} ("))
        qualified = line[:line.index(")") + 1]
        q99 = json.loads(run(hop, db, "hotspots", qualified, "--format", "json"))
        check(q99["requests"] == o99["requests"] and q99["items"] == o99["items"],
              "hotspots %r answers as the bare route: %r" % (qualified, q99))
        other = subprocess.run([hop, "--db", db, "hotspots", "GET /orders/{orderId} (nope/prod)"],
                               capture_output=True, text=True)
        check(other.returncode == 1, "another API's route is not found: exit %d" % other.returncode)
        # fan-out of the scheduled job, in JSON and text
        trace = None
        for line in open(os.path.join(fx, "segments.ndjson")):
            d = json.loads(line)
            if d["name"] == "nightly-report" and d.get("origin") == "AWS::Lambda":
                trace = d["trace_id"]
        tj = json.loads(run(hop, db, "trace", trace, "--format", "json"))
        fo = tj["requests"][0].get("fan_out", [])
        check(len(fo) == 1, "one fan-out in the job, got %r" % fo)
        if fo:
            for e in same(fo[0], exp["fanout"], "fan_out"):
                check(False, e)
        tt = run(hop, db, "trace", trace)
        check("fan-out" in tt and "3 branches" in tt, "text view shows the fan-out")
        # a branch's own id names the job's request
        cart = json.loads(run(hop, db, "trace", exp["fanout"]["branches"][0]["to"],
                              "--format", "json"))
        check(len(cart["requests"]) == 1, "a branch resolves to the job")

        # ingesting everything again changes nothing
        run(hop, db, "ingest", "--quiet", os.path.join(fx, "segments.ndjson"),
            os.path.join(fx, "logs-cwl.ndjson"))
        run(hop, db, "refresh")
        answers()
        # a window that holds only the first two minutes: GET /orders only
        t0 = exp_start = None
        for line in open(os.path.join(fx, "segments.ndjson")):
            d = json.loads(line)
            if d.get("origin") == "AWS::ApiGateway::Stage":
                t0 = d["start_time"] if t0 is None else min(t0, d["start_time"])
        exp_start = t0
        w = json.loads(run(hop, db, "endpoints", "--exact", "--format", "json",
                           "--since", "%.6f" % exp_start, "--until", "%.6f" % (exp_start + 95)))
        check([r["route"] for r in w["routes"]] == ["GET /orders/{orderId}"],
              "window routes %r" % [r["route"] for r in w["routes"]])
        # the trace fixtures: every request complete, so the route's
        # end-to-end percentiles are those of the durations they expect
        for name in ("api-lambda-sync", "apigw-access-logs", "async-invoke", "cold-starts",
                     "ddb-stream-correlation", "kinesis-sequence-number",
                     "kinesis-correlation-only", "shuffled", "sqs-batch-fanin", "sqs-link-only",
                     "sqs-message-id", "sqs-trace-header-only", "json-log-format",
                     "inputs-variety"):
            src = os.path.join(root, "fixtures", name)
            want = json.load(open(os.path.join(src, "expected.json")))["requests"]
            d = sorted(r["duration_ms"] for r in want)
            fdb = os.path.join(tmp, "fx-" + name)
            run(hop, fdb, "ingest", "--quiet", src)
            run(hop, fdb, "refresh")
            got = json.loads(run(hop, fdb, "endpoints", "--exact", "--format", "json"))["routes"]
            check(len(got) == 1 and got[0]["count"] == len(d) and got[0]["incomplete"] == 0,
                  "%s: routes %r" % (name, got))
            if len(got) == 1 and d:
                for p in (50, 90, 99):
                    w = d[max(1, math.ceil(p / 100.0 * len(d) - 1e-9)) - 1]
                    check(abs(got[0]["e2e_ms"]["p%d" % p] - w) <= 0.001,
                          "%s: e2e p%d %r want %r" % (name, p, got[0]["e2e_ms"]["p%d" % p], w))
    print("agg_fixtures: %s" % ("ok" if not FAILS else "%d failures" % len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
