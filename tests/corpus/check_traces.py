#!/usr/bin/env python3
"""Fallback for shared/tools/check_traces.py when that file is not there:
the same checks of `hoptrace trace --format json` against truth.json.

usage: check_traces.py HOPTRACE DB CORPUS_DIR [--ids all|apigw] [--sample N]

Per request, looked up by its API Gateway request id: exactly one request;
duration_ms and every hop's wait_ms within 1 ms; the critical path's service
names (collapsed, restricted to truth's path) equal truth's path; the
critical path sums to duration_ms (0.05 ms) and is contiguous (50 us) unless
a skew warning is present.  With --ids all (default), each other id of the
request must resolve to a result that contains the request (same root), and
to exactly one request, except the charge-card Lambda request id and the SQS
consumer trace id (trace_ids[1]), which must resolve to batch_size requests
(correlation ids: only containment).  Prints at most 8 failing requests,
then 'N/M requests exact'.  Exit 0 only when every request is exact.
"""
import json
import subprocess
import sys

DURATION_TOL_MS = 1.0
PATH_SUM_TOL_MS = 0.05
CONTIGUITY_TOL_US = 50


def lookup(hoptrace, db, ident):
    """-> (list of requests or None, error text)"""
    try:
        p = subprocess.run([hoptrace, "--db", db, "trace", ident, "--format", "json"],
                           capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if p.returncode != 0:
        return None, f"exit {p.returncode}: {p.stderr.strip()[:120]}"
    try:
        reqs = json.loads(p.stdout)["requests"]
        if not isinstance(reqs, list):
            raise TypeError("requests is not a list")
        return reqs, ""
    except (ValueError, KeyError, TypeError) as e:
        return None, f"unreadable json: {e}"


def services_on_path(cp, wanted):
    names = []
    for step in cp:
        n = step.get("name")
        if n in wanted and (not names or names[-1] != n):
            names.append(n)
    return names


def check_one(got, want):
    errs = []
    dur = got.get("duration_ms")
    if not isinstance(dur, (int, float)) or abs(dur - want["duration_ms"]) > DURATION_TOL_MS:
        errs.append(f"duration {dur} != {want['duration_ms']:.3f}")
    have = {(h.get("via"), h.get("resource")): h for h in got.get("hops", [])}
    for h in want["hops"]:
        g = have.get((h["via"], h["resource"]))
        if g is None:
            errs.append(f"missing hop {h['via']}:{h['resource']} (have {sorted(have)})")
        elif not isinstance(g.get("wait_ms"), (int, float)) or abs(g["wait_ms"] - h["wait_ms"]) > DURATION_TOL_MS:
            errs.append(f"hop {h['via']} wait {g.get('wait_ms')} != {h['wait_ms']:.3f}")
    cp = got.get("critical_path", [])
    names = services_on_path(cp, set(want["path"]))
    if names != want["path"]:
        errs.append(f"critical path services {names} != {want['path']}")
    skewed = any("skew" in json.dumps(w) for w in got.get("warnings", []))
    if not skewed:
        total = sum(s.get("duration_ms", 0) for s in cp)
        if abs(total - (dur or 0)) > PATH_SUM_TOL_MS:
            errs.append(f"critical path sums to {total:.3f}, not {dur}")
        for a, b in zip(cp, cp[1:]):
            if abs(a["start_us"] + a["duration_ms"] * 1000 - b["start_us"]) > CONTIGUITY_TOL_US:
                errs.append("critical path not contiguous")
                break
    return errs


def other_ids(t):
    """(kind, id, expected count or None for containment only)"""
    batch_ids = {t["process_request_id"], t["trace_ids"][1] if len(t["trace_ids"]) > 1 else None}
    ids = [("lambda", t["create_request_id"]), ("corr", t["correlation_id"]), ("sqs", t["message_id"])]
    ids += [("xray", x) for x in t["trace_ids"]]
    if "notify_request_id" in t:
        ids += [("lambda", t["notify_request_id"]), ("kinesis", t["kinesis_sequence"])]
    if "index_request_id" in t:
        ids += [("lambda", t["index_request_id"]), ("ddb", t["ddb_sequence"])]
    ids.append(("batch", t["process_request_id"]))
    out = []
    for kind, ident in ids:
        if kind == "corr":
            want = None
        elif kind in ("batch", "xray") and ident in batch_ids:
            want = t["batch_size"]
        else:
            want = 1
        out.append((kind, ident, want))
    return out


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    hoptrace, db, corpus = argv[1:4]
    mode = argv[argv.index("--ids") + 1] if "--ids" in argv else "all"
    reqs = json.load(open(f"{corpus}/truth.json"))["requests"]
    if "--sample" in argv:
        n = int(argv[argv.index("--sample") + 1])
        reqs = reqs[::max(1, len(reqs) // n)]
    failing = []
    for t in reqs:
        errs = []
        got, err = lookup(hoptrace, db, t["apigw_request_id"])
        root = None
        if got is None:
            errs.append(f"trace {err}")
        elif len(got) != 1:
            errs.append(f"{len(got)} requests for an API Gateway request id")
        else:
            errs += check_one(got[0], t)
            root = got[0].get("root")
        if not errs and mode == "all":
            for kind, ident, want in other_ids(t):
                rs, err = lookup(hoptrace, db, ident)
                if rs is None:
                    errs.append(f"{kind} id {ident}: {err.split(':')[0]}")
                    continue
                if root not in {r.get("root") for r in rs}:
                    errs.append(f"{kind} id {ident}: not found in its request")
                if want is not None and len(rs) != want:
                    errs.append(f"{kind} id {ident}: {len(rs)} requests, expected {want}")
        if errs:
            failing.append((t["i"], errs))
    for i, errs in failing[:8]:
        print(f"request {i}: " + "; ".join(errs[:3]))
    print(f"{len(reqs) - len(failing)}/{len(reqs)} requests exact")
    return 0 if not failing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
