#!/usr/bin/env python3
"""`trace --format otlp` reads back to the same answer.

Part of the e2e tier (tests/e2e/). For each fixture folder: ingest its
inputs into a fresh store, write every request (found by its root span id)
as OTLP/JSON with `trace ID --format otlp`, ingest those lines alone into a
second store, and require the same `trace ID --format json` request there:
the same spans (ids, trace ids, parents, names, times, flags, services),
the same hops (producer, consumer, via, resource, wait, evidence), the same
critical path and duration. Also checks that the export is OTLP/JSON as
the protocol has it (one trace id per request, hex ids, string times).

usage: otlp_roundtrip.py HOPTRACE FIXTURE_DIR [FIXTURE_DIR ...]
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SPAN_KEYS = ("id", "trace_id", "parent_id", "name", "origin", "start_us",
             "end_us", "error", "fault", "throttle", "service", "in_progress",
             "operation", "resource", "request_id")
HOP_KEYS = ("from", "to", "via", "resource", "wait_ms", "evidence", "pending")


def run(hop, db, *args):
    p = subprocess.run([hop, "--db", db] + list(args), capture_output=True,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def norm(req):
    spans = sorted(tuple(s.get(k) for k in SPAN_KEYS) for s in req["spans"])
    hops = sorted(tuple(h.get(k) for k in HOP_KEYS) for h in req["hops"])
    cp = [(c.get("span"), c.get("kind"), c.get("start_us"), c.get("duration_ms"))
          for c in req.get("critical_path") or []]
    return {"root": req["root"], "duration_ms": req["duration_ms"],
            "start_us": req["start_us"], "end_us": req["end_us"],
            "trace_ids": sorted(req["trace_ids"]), "spans": spans,
            "hops": hops, "critical_path": cp}


def check_export(line, fails, where):
    doc = json.loads(line)
    tids = set()
    for rs in doc["resourceSpans"]:
        attrs = {a["key"] for a in rs["resource"]["attributes"]}
        if "service.name" not in attrs:
            fails.append("%s: a resource without service.name" % where)
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                tids.add(sp["traceId"])
                if not re.fullmatch(r"[0-9a-f]{16}", sp["spanId"]):
                    fails.append("%s: spanId %r" % (where, sp["spanId"]))
                if not isinstance(sp["startTimeUnixNano"], str):
                    fails.append("%s: startTimeUnixNano not a string" % where)
                if sp["kind"] not in (1, 2, 3, 4, 5):
                    fails.append("%s: kind %r" % (where, sp["kind"]))
    if len(tids) != 1 or not re.fullmatch(r"[0-9a-f]{32}", next(iter(tids))):
        fails.append("%s: %d trace ids in one request" % (where, len(tids)))


def one(hop, folder):
    name = os.path.basename(folder.rstrip("/"))
    fails = []
    tmp = tempfile.mkdtemp(prefix="ht-otlp-rt-")
    try:
        db1, db2 = os.path.join(tmp, "a"), os.path.join(tmp, "b")
        inputs = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                        if n != "expected.json")
        rc, _, err = run(hop, db1, "ingest", "--quiet", *inputs)
        if rc not in (0, 3):
            return ["%s: ingest exit %s: %s" % (name, rc, err[:200])]
        exp = json.load(open(os.path.join(folder, "expected.json")))
        roots, before = set(), {}
        for req in exp["requests"]:
            ids = req["ids"]
            seg = ids.get("segment") or []
            tr = ids.get("trace") or []
            ident = seg[0] if seg else (tr[0] if tr else None)
            if not ident:
                continue
            rc, out, err = run(hop, db1, "trace", ident, "--format", "json")
            if rc != 0:
                fails.append("%s: trace %s exit %s" % (name, ident, rc))
                continue
            for r in json.loads(out)["requests"]:
                before[r["root"]] = norm(r)
                roots.add(r["root"])
        export = os.path.join(tmp, "export.ndjson")
        with open(export, "wb") as f:
            for root in sorted(roots):
                rc, out, err = run(hop, db1, "trace", root, "--format", "otlp")
                if rc != 0:
                    fails.append("%s: trace %s --format otlp exit %s" % (name, root, rc))
                    continue
                lines = out.decode().splitlines()
                for ln in lines:
                    check_export(ln, fails, "%s %s" % (name, root))
                f.write(out)
        rc, _, err = run(hop, db2, "ingest", export)
        if rc != 0:
            fails.append("%s: ingest of the export exit %s: %s" % (
                name, rc, err.decode(errors="replace").strip()[:300]))
        for root in sorted(roots):
            rc, out, err = run(hop, db2, "trace", root, "--format", "json")
            if rc != 0:
                fails.append("%s: %s not found after the round trip" % (name, root))
                continue
            got = {r["root"]: norm(r) for r in json.loads(out)["requests"]}
            want = before[root]
            g = got.get(root)
            if g is None:
                fails.append("%s: %s: no request rooted there after the round trip" % (name, root))
                continue
            for k in want:
                if want[k] != g[k]:
                    fails.append("%s: %s: %s differs:\n  before %s\n  after  %s" % (
                        name, root, k, json.dumps(want[k])[:600], json.dumps(g[k])[:600]))
        if not roots:
            fails.append("%s: no request to export" % name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return fails


def main():
    hop = sys.argv[1]
    bad = 0
    for folder in sys.argv[2:]:
        fails = one(hop, folder)
        for f in fails:
            print(f)
        print("otlp round trip %s: %s" % (os.path.basename(folder.rstrip("/")),
                                          "ok" if not fails else "%d failures" % len(fails)))
        bad += bool(fails)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
