"""Checks of one Jaeger trace against the `trace --format json` request(s)
it stands for (shared by jaeger_fixtures.py, jaeger_corpus.py and the
HTTP test of the Jaeger API). Each function returns a list of error
strings; empty means the trace holds.

The rules (docs/cli.md "trace --format jaeger"):
  - one traceID on the trace, on every span and on every reference; it is
    the root's X-Ray trace id as 32 hex digits (16 zeros and the root span
    id when the root has no trace id);
  - every span of the request is a span (spanID = X-Ray id), span ids are
    unique, every reference names a span of the trace, every processID is
    in processes;
  - a sync parent is a CHILD_OF reference;
  - one FOLLOWS_FROM reference per resolved hop, from the consumer to the
    producer, and no other FOLLOWS_FROM;
  - one wait span per hop (pending ones too), CHILD_OF the producer, with
    hop.via / hop.resource / hop.wait_ms / hop.evidence, and its duration
    the hop's wait in µs;
  - the spans and waits of the critical path carry critical_path = true.
"""

TOL_US = 1


def jaeger_trace_id(req):
    """The traceID hoptrace gives a request of `trace --format json`."""
    root = next((s for s in req["spans"] if s["id"] == req["root"]), None)
    if root is None:
        return None
    tid = root.get("trace_id")
    if tid:
        parts = tid.split("-")
        return (parts[1] + parts[2]).lower()
    return "0" * 16 + root["id"]


def tags_of(span):
    return {t["key"]: t["value"] for t in span.get("tags") or []}


def check_trace(trace, reqs):
    """trace: one Jaeger trace object; reqs: the requests (trace JSON) it
    stands for (those that share its traceID)."""
    errs = []
    tid = trace.get("traceID")
    want = {jaeger_trace_id(r) for r in reqs}
    if want != {tid}:
        errs.append("traceID %s, expected %s" % (tid, sorted(want)))
    spans = trace.get("spans") or []
    procs = trace.get("processes") or {}
    by_id = {}
    for s in spans:
        if s.get("traceID") != tid:
            errs.append("span %s has traceID %s" % (s.get("spanID"), s.get("traceID")))
        if s.get("spanID") in by_id:
            errs.append("span id %s twice" % s.get("spanID"))
        by_id[s.get("spanID")] = s
        if s.get("processID") not in procs:
            errs.append("span %s: processID %s not in processes" % (s.get("spanID"), s.get("processID")))
        if not isinstance(s.get("startTime"), int) or not isinstance(s.get("duration"), int) \
                or s["duration"] < 0:
            errs.append("span %s: startTime/duration not µs integers" % s.get("spanID"))
        for ref in s.get("references") or []:
            if ref.get("traceID") != tid:
                errs.append("span %s: reference in trace %s" % (s.get("spanID"), ref.get("traceID")))
            if ref.get("spanID") not in by_id and ref.get("spanID") not in \
                    {x.get("spanID") for x in spans}:
                errs.append("span %s: reference to %s, no such span" % (s.get("spanID"), ref.get("spanID")))
            if ref.get("refType") not in ("CHILD_OF", "FOLLOWS_FROM"):
                errs.append("span %s: refType %s" % (s.get("spanID"), ref.get("refType")))
    follows = set()
    nfollows = 0
    for s in spans:
        for ref in s.get("references") or []:
            if ref.get("refType") == "FOLLOWS_FROM":
                nfollows += 1
                follows.add((ref["spanID"], s["spanID"]))
    resolved = set()
    waits = {}
    for s in spans:
        t = tags_of(s)
        if "hop.producer" in t:
            waits.setdefault((t["hop.producer"], t.get("hop.consumer")), []).append((s, t))
    for r in reqs:
        where = "request %s" % r.get("root")
        for sp in r["spans"]:
            js = by_id.get(sp["id"])
            if js is None:
                errs.append("%s: span %s (%s) missing" % (where, sp["id"], sp.get("name")))
                continue
            if js["startTime"] != sp["start_us"]:
                errs.append("%s: span %s starts %s, not %s" % (where, sp["id"], js["startTime"], sp["start_us"]))
            if abs(js["duration"] - max(0, sp["end_us"] - sp["start_us"])) > TOL_US:
                errs.append("%s: span %s lasts %s" % (where, sp["id"], js["duration"]))
            if sp.get("trace_id") and tags_of(js).get("xray.trace_id") != sp["trace_id"]:
                errs.append("%s: span %s: xray.trace_id %s" % (where, sp["id"], tags_of(js).get("xray.trace_id")))
        for h in r["hops"]:
            if h.get("from") is None:
                continue
            if not h.get("pending") and h.get("to") is not None:
                resolved.add((h["from"], h["to"]))
                if (h["from"], h["to"]) not in follows:
                    errs.append("%s: hop %s -> %s has no FOLLOWS_FROM" % (where, h["from"], h["to"]))
            cands = waits.get((h["from"], h.get("to") if not h.get("pending") else None), [])
            cands = [(s, t) for s, t in cands if t.get("hop.via") == h["via"]
                     and t.get("hop.resource") == h["resource"]]
            if not cands:
                errs.append("%s: no wait span for hop %s %s %s -> %s" % (
                    where, h["via"], h["resource"], h["from"], h.get("to")))
                continue
            s, t = cands[0]
            if abs(t.get("hop.wait_ms", -1e9) - h["wait_ms"]) > 0.0015:
                errs.append("%s: wait span hop.wait_ms %s != %s" % (where, t.get("hop.wait_ms"), h["wait_ms"]))
            if abs(s["duration"] - max(0, round(h["wait_ms"] * 1000))) > TOL_US:
                errs.append("%s: wait span lasts %s µs, hop waited %s ms" % (where, s["duration"], h["wait_ms"]))
            if t.get("hop.evidence") != h["evidence"]:
                errs.append("%s: wait span evidence %s != %s" % (where, t.get("hop.evidence"), h["evidence"]))
            if bool(t.get("hop.pending")) != bool(h.get("pending")):
                errs.append("%s: wait span pending %s" % (where, t.get("hop.pending")))
            refs = s.get("references") or []
            if not refs or refs[0] != {"refType": "CHILD_OF", "traceID": tid, "spanID": h["from"]}:
                errs.append("%s: wait span %s is not CHILD_OF the producer %s" % (where, s["spanID"], h["from"]))
        parents = {sp["id"]: sp for sp in r["spans"]}
        for cp in r.get("critical_path") or []:
            js = by_id.get(cp["span"])
            if cp["kind"] != "wait" and js is not None and tags_of(js).get("critical_path") is not True:
                errs.append("%s: span %s on the critical path lacks critical_path" % (where, cp["span"]))
        del parents
    if nfollows != len(resolved):
        errs.append("%d FOLLOWS_FROM references for %d hops" % (nfollows, len(resolved)))
    return errs


def check_document(doc, reqs):
    """doc: {"data": [...]} of `trace --format jaeger` (or /api/traces/ID);
    reqs: the requests of `trace --format json` for the same id."""
    errs = []
    data = doc.get("data")
    if not isinstance(data, list):
        return ["data is not a list"]
    groups = {}
    for r in reqs:
        groups.setdefault(jaeger_trace_id(r), []).append(r)
    got = {t.get("traceID"): t for t in data}
    if len(got) != len(data):
        errs.append("a traceID appears twice in data")
    if set(got) != set(groups):
        errs.append("traces %s, expected %s" % (sorted(got), sorted(groups)))
    for tid, rs in groups.items():
        if tid in got:
            errs.extend(check_trace(got[tid], rs))
    return errs
