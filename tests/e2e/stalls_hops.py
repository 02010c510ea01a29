#!/usr/bin/env python3
"""Stall detection sees the SNS hops (design.md "SNS and EventBridge").

usage: stalls_hops.py HOPTRACE FIXTURES_DIR

Ingests fixtures/sns-fanout into a fresh store and evaluates `stalls
--format json --threshold 1s` a day after its newest event:
- the stage create-order -> sns:order-placed -> send-confirmation (the
  Lambda subscriber, the first to receive o-0's message) is `stalled`,
  with exactly one waiting item: o-2's Publish (expected.json names it as
  o-2's pending hop), listed as stuck under its hop key sns:<message id>;
- the SQS subscriber's deliveries are receipts of their own sns stage
  (consumer bill-order), next to its sqs stage;
- ingesting the same inputs again under other names (so they are decoded
  again) leaves the stalls answer identical (a subscriber is noted once);
- the answer does not depend on the order the inputs arrive in (logs
  before the segments);
- a subscriber known only through the trace header (otel-sns-fanout: the
  handler span under a Publish span that names its message id) consumes
  the message: nothing of sns:order-placed is left pending;
- `prune` past everything leaves no key and no pending entry (the SNS
  message-id keys, the hop halves and each subscriber's note go with the
  request): mdb_dump lists them. Needs mdb_dump (lmdb-utils); skipped
  (exit 77) without it.
Temporary folders are removed. Exit 0 only if every check passes.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import store_util


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def differences(a, b):
    """What differs between two `stalls --format json` answers, per stage
    and field (so that a failure says which)."""
    sa = {g.get("stage"): g for g in a.get("stages", [])}
    sb = {g.get("stage"): g for g in b.get("stages", [])}
    out = []
    for k in sorted(set(sa) | set(sb), key=str):
        ga, gb = sa.get(k), sb.get(k)
        if ga is None or gb is None:
            out.append("%s only in the %s" % (k, "first" if gb is None else "second"))
        elif ga != gb:
            out.append("%s: %s" % (k, {f: (ga.get(f), gb.get(f)) for f in set(ga) | set(gb)
                                       if ga.get(f) != gb.get(f)}))
    rest = {f for f in set(a) | set(b) if f != "stages" and a.get(f) != b.get(f)}
    if rest:
        out.append("top level: %s" % {f: (a.get(f), b.get(f)) for f in rest})
    return "; ".join(out)[:2000]


def main():
    hop, fx = sys.argv[1], os.path.join(sys.argv[2], "sns-fanout")
    exp = json.load(open(os.path.join(fx, "expected.json")))
    o2 = [r for r in exp["requests"] if r["name"] == "o-2"][0]
    pend = o2["pending"][0]
    now_s = o2["end_us"] // 1_000_000 + 86400
    errs = []
    if not shutil.which("mdb_dump"):
        print("SKIP: mdb_dump (lmdb-utils) not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="ht-stalls-hops-")
    try:
        db = os.path.join(tmp, "db")
        inputs = [os.path.join(fx, f) for f in exp["inputs"]]
        p = run([hop, "--db", db, "ingest", "--quiet"] + inputs)
        if p.returncode != 0:
            print("FAIL: ingest exit %d: %s" % (p.returncode, p.stderr[-300:]))
            return 1

        def stalls():
            q = run([hop, "--db", db, "stalls", "--format", "json", "--threshold", "1s",
                     "--now", str(now_s)])
            # exit 0 all ok, else the worst status; the JSON is the answer
            try:
                return json.loads(q.stdout)
            except ValueError:
                errs.append("stalls: unreadable JSON (exit %d): %s" % (q.returncode, q.stderr[-200:]))
                return {"stages": []}

        first = stalls()
        st = {(g["producer"], g["via"], g["resource"], g["consumer"]): g for g in first["stages"]}
        g = st.get(("create-order", "sns", "order-placed", "send-confirmation"))
        if not g:
            errs.append("no stage create-order -> sns:order-placed -> send-confirmation: %s" % sorted(st))
        else:
            if g["status"] != "stalled":
                errs.append("sns stage status %s, expected stalled" % g["status"])
            if g["pending"] != 1:
                errs.append("sns stage pending %s, expected 1" % g["pending"])
            spans = [s["span"] for s in g["stuck"]]
            if spans != [pend["from"]]:
                errs.append("sns stage stuck spans %s, expected [%s]" % (spans, pend["from"]))
            hops = [s["hop"] for s in g["stuck"]]
            if hops != ["sns:" + o2["ids"]["sns"]]:
                errs.append("sns stage stuck hop keys %s" % hops)
        b = [v for k, v in st.items() if k[1:] == ("sns", "order-placed", "bill-order")]
        if not b or sum(v["consumed"] for v in b) != 2:
            errs.append("bill-order's sns receipts: %s" % [(k, v["consumed"]) for k, v in st.items()])
        if not any(k[1:] == ("sqs", "billing-queue", "bill-order") for k in st):
            errs.append("no sqs:billing-queue stage for bill-order")

        # the other order: logs first, then the segments
        db2 = os.path.join(tmp, "db2")
        for f in sorted(inputs, key=lambda x: "segments" in x):
            if run([hop, "--db", db2, "ingest", "--quiet", f]).returncode != 0:
                errs.append("ingest %s into the second store failed" % f)
        q = run([hop, "--db", db2, "stalls", "--format", "json", "--threshold", "1s",
                 "--now", str(now_s)])
        try:
            second = json.loads(q.stdout)
            if second != first:
                errs.append("stalls differ when the logs come before the segments: %s"
                            % differences(first, second))
        except ValueError:
            errs.append("stalls of the second store: unreadable JSON")

        # otel-sns-fanout: the Lambda subscriber is known by its parent only
        ofx = os.path.join(sys.argv[2], "otel-sns-fanout")
        oexp = json.load(open(os.path.join(ofx, "expected.json")))
        db3 = os.path.join(tmp, "db3")
        run([hop, "--db", db3, "ingest", "--quiet"] +
            [os.path.join(ofx, f) for f in oexp["inputs"]])
        onow = max(r["end_us"] for r in oexp["requests"]) // 1_000_000 + 86400
        q = run([hop, "--db", db3, "stalls", "--format", "json", "--threshold", "1s",
                 "--now", str(onow)])
        try:
            ost = json.loads(q.stdout)["stages"]
        except (ValueError, KeyError):
            ost = []
            errs.append("otel-sns-fanout stalls: unreadable JSON")
        sns = [g for g in ost if g["via"] == "sns"]
        if not any(g["consumer"] == "send-confirmation" and g["producer"] == "create-order"
                   and g["consumed"] == 1 for g in sns):
            errs.append("otel-sns-fanout: no consumed create-order -> sns -> send-confirmation: %s"
                        % [(g["stage"], g["consumed"]) for g in sns])
        if any(g["pending"] for g in sns):
            errs.append("otel-sns-fanout: an sns stage has something pending: %s"
                        % [(g["stage"], g["pending"]) for g in sns])

        # the same documents again, under other names: decoded again
        again = []
        for f in inputs:
            c = os.path.join(tmp, "again-" + os.path.basename(f))
            shutil.copyfile(f, c)
            again.append(c)
        p = run([hop, "--db", db, "ingest", "--quiet"] + again)
        if p.returncode != 0:
            errs.append("second ingest exit %d" % p.returncode)
        again_st = stalls()
        if again_st != first:
            errs.append("stalls changed after ingesting the same documents again: %s"
                        % differences(first, again_st))

        p = run([hop, "--db", db, "prune", "--before", "2030-01-01T00:00:00Z",
                 "--horizon", "0s"])
        if p.returncode != 0:
            errs.append("prune exit %d: %s" % (p.returncode, p.stderr[-200:]))
        left = store_util.logical_tables(db, ("keys", "pending"))
        for name in ("keys", "pending"):
            if left.get(name):
                errs.append("after prune, %s holds %d entries"
                            % (name, len(left[name])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for e in errs:
        print("FAIL: " + e)
    print("stalls_hops: %s" % ("ok" if not errs else "%d failures" % len(errs)))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
