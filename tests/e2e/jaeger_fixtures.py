#!/usr/bin/env python3
"""`trace ID --format jaeger` against every fixture with an expected.json.

usage: jaeger_fixtures.py HOPTRACE FIXTURES_DIR

For each fixture folder: ingest its inputs into a fresh store; for every id
of every expected request, `trace --format jaeger` must be a Jaeger trace
file ({"data": [...]}) that holds the request of `trace --format json`
(jaeger_check.py: all its spans, one traceID, one FOLLOWS_FROM per hop,
wait spans with the hop's wait, references that name spans of the trace);
and for the request itself the expected answer: the hops of expected.json
(via, resource, wait within 1 ms) are its wait spans, and the pending
writes of expected.json are pending wait spans. An unknown id exits 1 with
nothing on stdout. Exit 0 when every fixture holds.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jaeger_check import check_document, jaeger_trace_id, tags_of  # noqa: E402

TOL_MS = 1.0


def run(hop, db, *args):
    p = subprocess.run([hop, "--db", db] + list(args), capture_output=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def check_fixture(hop, folder):
    name = os.path.basename(folder.rstrip("/"))
    with open(os.path.join(folder, "expected.json")) as f:
        exp = json.load(f)
    inputs = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                    if n != "expected.json" and os.path.isfile(os.path.join(folder, n)))
    fails = []
    tmp = tempfile.mkdtemp(prefix="ht-jaeger-")
    db = os.path.join(tmp, "db")
    try:
        run(hop, db, "ingest", *inputs)
        nchecked = 0
        for t in exp.get("requests", []):
            ids = []
            for kind, v in t["ids"].items():
                for ident in (v if isinstance(v, list) else [v]):
                    ids.append((kind, ident))
            root = None
            for kind, ident in ids:
                where = "%s: request %s %s %s" % (name, t["name"], kind, ident)
                rc, out, err = run(hop, db, "trace", ident, "--format", "json")
                rcj, outj, errj = run(hop, db, "trace", ident, "--format", "jaeger")
                if rc != 0 or rcj != 0:
                    fails.append("%s: exit %s / %s: %s" % (where, rc, rcj, errj.decode(errors="replace")[:160]))
                    continue
                reqs = json.loads(out)["requests"]
                try:
                    doc = json.loads(outj)
                except ValueError as e:
                    fails.append("%s: jaeger output is not JSON: %s" % (where, e))
                    continue
                fails.extend("%s: %s" % (where, e) for e in check_document(doc, reqs))
                nchecked += 1
                if root is None and len(reqs) == 1:
                    root = reqs[0]
                    fails.extend("%s: %s" % (where, e) for e in check_expected(doc, root, t))
        for ident in exp.get("unknown_ids", []):
            rc, out, _ = run(hop, db, "trace", ident, "--format", "jaeger")
            if rc != 1 or out:
                fails.append("%s: unknown id %s: exit %s, %d bytes" % (name, ident, rc, len(out)))
        if not nchecked and exp.get("requests"):
            fails.append("%s: no id checked" % name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print(f, flush=True)
    print("fixture %s: %s" % (name, "ok" if not fails else "%d failures" % len(fails)), flush=True)
    return not fails


def check_expected(doc, req, t):
    """The request's Jaeger trace against expected.json's hops and pending
    writes."""
    errs = []
    tid = jaeger_trace_id(req)
    trace = next((x for x in doc["data"] if x["traceID"] == tid), None)
    if trace is None:
        return ["no trace %s" % tid]
    waits = [tags_of(s) for s in trace["spans"] if "hop.via" in tags_of(s)
             and "hop.producer" in tags_of(s)]
    resolved = [w for w in waits if not w.get("hop.pending")]
    pending = [w for w in waits if w.get("hop.pending")]
    exp_hops = t.get("hops") or []
    if len(resolved) != len(exp_hops):
        errs.append("%d wait spans, expected %d hops" % (len(resolved), len(exp_hops)))
    for h in exp_hops:
        if not any(w["hop.via"] == h["via"] and w["hop.resource"] == h["resource"]
                   and abs(w["hop.wait_ms"] - h["wait_ms"]) <= TOL_MS for w in resolved):
            errs.append("no wait span for expected hop %s %s %.3f ms" % (h["via"], h["resource"], h["wait_ms"]))
    exp_pending = t.get("pending") or []
    if len(pending) != len(exp_pending):
        errs.append("%d pending wait spans, expected %d" % (len(pending), len(exp_pending)))
    for p in exp_pending:
        if not any(w["hop.via"] == p["via"] and w["hop.resource"] == p["resource"]
                   and w["hop.producer"] == p["from"] for w in pending):
            errs.append("no pending wait span for %s %s from %s" % (p["via"], p["resource"], p["from"]))
    follows = sum(1 for s in trace["spans"] for r in s["references"] if r["refType"] == "FOLLOWS_FROM")
    # one per hop; the legs of one delivery (SNS -> SQS -> consumer) join
    # the same two spans and share theirs
    pairs = {(w["hop.producer"], w.get("hop.consumer")) for w in resolved}
    if follows != len(pairs) or len(resolved) != len(exp_hops):
        errs.append("%d FOLLOWS_FROM, expected %d (one per producer-consumer "
                    "pair of the %d hops)" % (follows, len(pairs), len(exp_hops)))
    return errs


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    hop, root = argv[1], argv[2]
    ok = True
    for n in sorted(os.listdir(root)):
        folder = os.path.join(root, n)
        if os.path.isfile(os.path.join(folder, "expected.json")):
            ok &= check_fixture(hop, folder)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
