#!/usr/bin/env python3
"""hoptrace stalls / metrics against a generated corpus's truth.

usage: stalls_corpus.py HOPTRACE PROJECT_DIR [N SEED STREAM_BATCH STALLED]

The corpus generator (tests/corpus/gen_corpus.py) never lets record-ledger
consume the last STALLED DynamoDB writes. Evaluated at the truth's `now_s`
with its threshold, exactly that stage must be stalled, with exactly those
items pending (by correlation id), every other stage ok, and exit status 4.
The stuck requests' roots must lead `hoptrace trace` to those requests.
Re-ingesting changes nothing; before the data, nothing is pending; a
per-resource threshold from --config clears the stall; `metrics` is valid
Prometheus text naming the same figures. The shared payments sample, when
present, is checked against its own `stall` truth.
"""
import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(hoptrace, db, *args, want=None):
    p = subprocess.run([hoptrace, "--db", db, *args], capture_output=True, text=True, timeout=300)
    if want is not None and p.returncode != want:
        check(False, f"{' '.join(args)}: exit {p.returncode}, want {want}; stderr: {p.stderr.strip()[:400]}")
    return p


def stalls_json(hoptrace, db, now, *extra, want=None):
    p = run(hoptrace, db, "stalls", "--now", str(now), "--format", "json", *extra, want=want)
    try:
        return json.loads(p.stdout), p
    except ValueError:
        check(False, f"stalls printed no JSON: {p.stdout[:300]!r} {p.stderr[:300]!r}")
        return {"stages": []}, p


def check_stall(hoptrace, db, truth, label, stuck_corrs=None):
    st = truth["stall"]
    thr = st.get("threshold", "300s")
    out, p = stalls_json(hoptrace, db, st["now_s"], "--threshold", thr, "--max-stuck", "10000", want=4)
    stalled = [g for g in out["stages"] if g["status"] == "stalled"]
    check(len(stalled) == 1, f"{label}: one stalled stage, got {[g['stage'] for g in stalled]}")
    for g in out["stages"]:
        if g in stalled:
            continue
        check(g["status"] == "ok", f"{label}: {g['stage']} is {g['status']}, want ok")
    if len(stalled) != 1:
        return out, None
    g = stalled[0]
    for k_truth, k_out in (("stage_via", "via"), ("resource", "resource"), ("producer", "producer"),
                           ("consumer", "consumer")):
        check(g[k_out] == st[k_truth], f"{label}: stalled {k_out} {g[k_out]!r}, want {st[k_truth]!r}")
    check(g["pending"] == st["pending"], f"{label}: pending {g['pending']}, want {st['pending']}")
    check(g["overdue"] == st["pending"], f"{label}: overdue {g['overdue']}, want {st['pending']}")
    check(g["entered"] == g["consumed"] + g["pending"], f"{label}: entered != consumed + pending: {g}")
    check(g["oldest_pending_age_s"] > 300, f"{label}: oldest age {g['oldest_pending_age_s']}")
    check(not g["stuck_truncated"] and len(g["stuck"]) == st["pending"], f"{label}: stuck list {len(g['stuck'])}")
    if stuck_corrs is not None:
        got = {s["correlation_id"] for s in g["stuck"]}
        check(got == stuck_corrs, f"{label}: stuck correlation ids {sorted(got)} != truth {sorted(stuck_corrs)}")
    check(all(s["root"] for s in g["stuck"]), f"{label}: every stuck item names its root")
    return out, g


# ---- corpus surgery: a consumer that stops, the same data in other orders --

def read_datagrams(path):
    """The daemon datagrams of segments.ndjson: (header, document) pairs."""
    lines = [ln for ln in open(path).read().split("\n") if ln.strip()]
    out, i = [], 0
    while i < len(lines):
        if lines[i].startswith('{"format"') and i + 1 < len(lines):
            out.append((lines[i], lines[i + 1]))
            i += 2
        else:
            out.append((None, lines[i]))
            i += 1
    return out


def write_datagrams(path, dgs):
    with open(path, "w") as f:
        for h, d in dgs:
            if h:
                f.write(h + "\n")
            f.write(d + "\n")


def cwl_messages(corpus):
    """Every CloudWatch Logs message of the corpus: the NDJSON file's and
    the ones inside logs-kinesis.json's records."""
    msgs = [json.loads(ln) for ln in open(os.path.join(corpus, "logs-cwl.ndjson")) if ln.strip()]
    kin = json.load(open(os.path.join(corpus, "logs-kinesis.json")))
    for r in kin["Records"]:
        msgs.append(json.loads(gzip.decompress(base64.b64decode(r["Data"]))))
    return msgs


def write_cwl(path, msgs):
    with open(path, "w") as f:
        for m in msgs:
            f.write(json.dumps(m, separators=(",", ":")) + "\n")


def kinesis_records_in(msg):
    """Kinesis records a consumer's logged events name."""
    n = 0
    for e in msg["logEvents"]:
        try:
            line = json.loads(e["message"])
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        ev = line.get("event")
        if isinstance(ev, dict):
            n += sum(1 for r in ev.get("Records", []) if r.get("eventSource") == "aws:kinesis")
    return n


def stopped_kinesis_consumer(hoptrace, corpus, tmp, truth):
    """send-receipt stops halfway: nothing of it after the cut. The Kinesis
    stage, whose writes name no stream, must be learned from what the
    consumer did read before, and reported stalled with the rest waiting."""
    starts = sorted(r["start_us"] for r in truth["requests"])
    cut_s = starts[len(starts) // 2] / 1e6
    out = os.path.join(tmp, "stopped")
    os.makedirs(out)
    dgs = [(h, d) for h, d in read_datagrams(os.path.join(corpus, "segments.ndjson"))
           if not (json.loads(d).get("name") == "send-receipt" and json.loads(d)["start_time"] >= cut_s)]
    write_datagrams(os.path.join(out, "segments.ndjson"), dgs)
    kept, consumed = [], 0
    for m in cwl_messages(corpus):
        if m.get("logGroup") == "/aws/lambda/send-receipt":
            m["logEvents"] = [e for e in m["logEvents"] if e["timestamp"] / 1000.0 < cut_s]
            if not m["logEvents"]:
                continue
            consumed += kinesis_records_in(m)
        kept.append(m)
    write_cwl(os.path.join(out, "logs-cwl.ndjson"), kept)
    db = os.path.join(tmp, "stopped.db")
    run(hoptrace, db, "ingest", out, want=0)
    entered = sum(1 for r in truth["requests"] if not r["stalled"])
    now = max(r["end_us"] for r in truth["requests"]) // 1000000 + 400
    res, _ = stalls_json(hoptrace, db, now, "--threshold", "300s", "--max-stuck", "10000", want=4)
    kin = [g for g in res["stages"] if g["via"] == "kinesis"]
    check(len(kin) == 1, f"stopped consumer: one Kinesis stage, got {[g['stage'] for g in kin]}")
    if len(kin) != 1:
        return
    g = kin[0]
    check(g["producer"] == "record-ledger" and g["resource"] == "payment-events" and
          g["consumer"] == "send-receipt", f"stopped consumer: stage {g['stage']}")
    check(g["status"] == "stalled", f"stopped consumer: status {g['status']}")
    check(consumed > 0 and g["consumed"] == consumed, f"stopped consumer: consumed {g['consumed']}, want {consumed}")
    check(g["entered"] == entered and g["pending"] == entered - consumed,
          f"stopped consumer: entered {g['entered']} pending {g['pending']}, want {entered}, {entered - consumed}")
    check(g["delay_count"] == consumed and g["delay_p50_ms"] > 0, "stopped consumer: delays of what was consumed")
    check(len({s["correlation_id"] for s in g["stuck"]}) == entered - consumed,
          "stopped consumer: every waiting write names its request")


def stage_view(hoptrace, db, now):
    res, _ = stalls_json(hoptrace, db, now, "--threshold", "300s", "--max-stuck", "10000")
    p = run(hoptrace, db, "metrics", "--now", str(now))
    metrics = sorted(ln for ln in p.stdout.splitlines() if ln.startswith(("hoptrace_stage_", "hoptrace_consumer_")))
    return res, metrics


def order_and_split(hoptrace, corpus, tmp, truth):
    """The same corpus ingested in another order and split across processes:
    the same stalls JSON and the same stage metrics."""
    now = truth["stall"]["now_s"]
    ref_db = os.path.join(tmp, "ref.db")
    run(hoptrace, ref_db, "ingest", corpus, want=0)
    ref = stage_view(hoptrace, ref_db, now)
    dgs = read_datagrams(os.path.join(corpus, "segments.ndjson"))
    msgs = cwl_messages(corpus)
    # reversed, logs before segments, in two processes
    rev = os.path.join(tmp, "rev")
    os.makedirs(os.path.join(rev, "a"))
    os.makedirs(os.path.join(rev, "b"))
    write_cwl(os.path.join(rev, "a", "logs.ndjson"), list(reversed(msgs)))
    write_datagrams(os.path.join(rev, "b", "segments.ndjson"), list(reversed(dgs)))
    rev_db = os.path.join(tmp, "rev.db")
    run(hoptrace, rev_db, "ingest", os.path.join(rev, "a"), "--batch", "97", want=0)
    run(hoptrace, rev_db, "ingest", os.path.join(rev, "b"), "--batch", "131", want=0)
    # interleaved halves: every other datagram and message in each process
    spl = os.path.join(tmp, "split")
    for k in range(2):
        os.makedirs(os.path.join(spl, str(k)))
        write_datagrams(os.path.join(spl, str(k), "segments.ndjson"), dgs[k::2])
        write_cwl(os.path.join(spl, str(k), "logs.ndjson"), msgs[1 - k::2])
    spl_db = os.path.join(tmp, "split.db")
    for k in range(2):
        run(hoptrace, spl_db, "ingest", os.path.join(spl, str(k)), "--batch", "53", want=0)
    for name, db in (("reversed", rev_db), ("split", spl_db)):
        got = stage_view(hoptrace, db, now)
        check(got[0] == ref[0], f"{name} ingest: stalls JSON differs: {json.dumps(got[0])[:600]} vs {json.dumps(ref[0])[:600]}")
        check(got[1] == ref[1], f"{name} ingest: stage metrics differ: {sorted(set(got[1]) ^ set(ref[1]))[:6]}")


def main():
    hoptrace, project = sys.argv[1], sys.argv[2]
    n, seed, sb, stalled = (sys.argv[3:7] + ["200", "21", "3", "6"][len(sys.argv[3:7]):])
    tmp = tempfile.mkdtemp(prefix="ht_stalls_")
    try:
        corpus, db = os.path.join(tmp, "corpus"), os.path.join(tmp, "db")
        subprocess.run([sys.executable, os.path.join(project, "tests/corpus/gen_corpus.py"), "--requests", n,
                        "--seed", seed, "--out", corpus, "--stream-batch", sb, "--stalled", stalled],
                       check=True, capture_output=True)
        truth = json.load(open(os.path.join(corpus, "truth.json")))
        stuck_truth = {r["correlation_id"] for r in truth["requests"] if r["stalled"]}
        check(len(stuck_truth) == int(stalled), "generator made the stalled requests")
        run(hoptrace, db, "ingest", corpus, want=0)
        out1, g = check_stall(hoptrace, db, truth, "corpus", stuck_truth)

        # the roots lead `trace` to the stuck requests
        if g:
            by_corr = {r["correlation_id"]: r for r in truth["requests"]}
            for s in g["stuck"][:3]:
                p = run(hoptrace, db, "trace", s["root"], "--format", "json", want=0)
                try:
                    reqs = json.loads(p.stdout)["requests"]
                except ValueError:
                    reqs = []
                check(len(reqs) == 1 and s["correlation_id"] in reqs[0]["correlation_ids"],
                      f"trace {s['root']} is the stuck request {s['correlation_id']}")
                want = by_corr[s["correlation_id"]]["apigw_request_id"]
                p2 = run(hoptrace, db, "trace", want, "--format", "json", want=0)
                try:
                    root2 = json.loads(p2.stdout)["requests"][0]["root"]
                except (ValueError, IndexError, KeyError):
                    root2 = None
                check(root2 == s["root"], f"root of {want}: {root2} vs stuck root {s['root']}")

        # idempotent: a second ingest changes nothing
        run(hoptrace, db, "ingest", corpus, want=0)
        out2, _ = stalls_json(hoptrace, db, truth["stall"]["now_s"], "--threshold", "300s",
                              "--max-stuck", "10000", want=4)
        check(out1 == out2, "a second ingest changed the stalls output")

        # before any data: nothing pending, exit 0
        t0 = min(r["start_us"] for r in truth["requests"]) // 1000000 - 1
        out3, _ = stalls_json(hoptrace, db, t0, want=0)
        check(all(g3["status"] == "ok" and g3["pending"] == 0 for g3 in out3["stages"]),
              "before the data every stage is ok with nothing pending")

        # a per-resource threshold from the config file clears the stall
        cfg = os.path.join(tmp, "stages.json")
        with open(cfg, "w") as f:
            json.dump({"threshold": "300s", "stages": {"payments": "2h"}}, f)
        out4, _ = stalls_json(hoptrace, db, truth["stall"]["now_s"], "--config", cfg, want=0)
        check(not [x for x in out4["stages"] if x["status"] != "ok"], "config override: all ok")
        with open(cfg, "w") as f:
            f.write('{"stages": {"payments": "soon"}}')
        run(hoptrace, db, "stalls", "--config", cfg, want=2)

        # text output, usage errors, --help, a missing store
        p = run(hoptrace, db, "stalls", "--now", str(truth["stall"]["now_s"]), want=4)
        check("stalled" in p.stdout and "charge-card" in p.stdout and "hoptrace trace" in p.stdout,
              "text output names the stalled stage and how to trace")
        run(hoptrace, db, "stalls", "--threshold", "fast", want=2)
        run(hoptrace, db, "stalls", "--format", "xml", want=2)
        run(hoptrace, db, "stalls", "--help", want=0)
        run(hoptrace, db, "metrics", "--help", want=0)
        run(hoptrace, os.path.join(tmp, "nothing-here"), "stalls", want=1)

        # metrics: valid exposition text with the same figures
        prom = os.path.join(tmp, "hoptrace.prom")
        run(hoptrace, db, "metrics", "--now", str(truth["stall"]["now_s"]), "--output", prom, want=0)
        text = open(prom).read() if os.path.exists(prom) else ""
        line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                             r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')
        types = {}
        for ln in text.splitlines():
            if ln.startswith("# TYPE "):
                _, _, name, typ = ln.split(" ", 3)
                check(name not in types, f"metric {name} declared twice")
                types[name] = typ
            elif not ln.startswith("#"):
                check(line_re.match(ln) is not None, f"bad exposition line: {ln!r}")
        lab = 'producer="charge-card",via="dynamodb",resource="payments",consumer="record-ledger"'
        check(f'hoptrace_stage_status{{{lab},status="stalled"}} 1' in text, "metrics: stalled status")
        check(f'hoptrace_stage_pending{{{lab}}} {stalled}' in text, "metrics: pending count")
        check("hoptrace_consumer_invocations_total{" in text, "metrics: consumer cost")
        check(types.get("hoptrace_stage_delay_seconds") == "summary", "metrics: delay summary")
        check(types.get("hoptrace_rejected_total") == "counter", "metrics: rejects by reason")

        # a Kinesis consumer that stops; the same data in other orders
        stopped_kinesis_consumer(hoptrace, corpus, tmp, truth)
        order_and_split(hoptrace, corpus, tmp, truth)

        # the shared payments sample and its own truth
        sample = os.path.join(project, "..", "shared", "samples", "payments")
        if os.path.exists(os.path.join(sample, "truth.json")):
            sdb = os.path.join(tmp, "sample.db")
            run(hoptrace, sdb, "ingest", sample, want=0)
            st = json.load(open(os.path.join(sample, "truth.json")))
            corrs = {r["correlation_id"] for r in st["requests"] if r.get("stalled") and r.get("correlation_id")}
            check_stall(hoptrace, sdb, st, "sample", corrs or None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("stalls: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
