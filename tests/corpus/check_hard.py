#!/usr/bin/env python3
"""Hold `hoptrace trace --format json` to a corpus written by gen_corpus.py
with the adversities of issue 12 (link-only batches, skewed hosts,
redelivered batches, stale correlation keys, shuffled arrival).

usage: check_hard.py HOPTRACE DB CORPUS_DIR

Owned by the test suite (tests/corpus/). It only runs `hoptrace trace` as a
user would. Per request, looked up by its API Gateway request id:
  - exactly one request; duration_ms within 1 ms;
  - every hop of the truth, one per consumer attempt (a redelivered message
    is two SQS hops), each matched once with its wait_ms within 1 ms, and no
    other resolved hop; the stalled DynamoDB write as a pending hop;
  - the critical path's service names (collapsed) equal truth's path; it
    starts at the root's start and ends at the last end; it sums to the
    duration and is contiguous unless clocks disagree (a consumer that ran
    wholly before its producer's call ended, by the clocks, is told on its
    own clock);
  - a `skew` warning if and only if clocks disagree, naming each skewed
    [producer, consumer] pair, on the path or not;
  - no span of a failed attempt on the critical path.
Then other ids: the message id and correlation id name this request only
(stale keys never merge requests); the charge-card request id of the
successful and of every failed attempt names its batch_size requests.
Prints at most 10 failing requests, then 'N/M requests exact'.
"""
import json
import subprocess
import sys

TOL_MS = 1.0
SUM_TOL_MS = 0.05
CONTIG_US = 50


def lookup(hop, db, ident):
    try:
        p = subprocess.run([hop, "--db", db, "trace", ident, "--format", "json"],
                           capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if p.returncode != 0:
        return None, "exit %d: %s" % (p.returncode, p.stderr.strip()[:120])
    try:
        return json.loads(p.stdout)["requests"], ""
    except (ValueError, KeyError, TypeError) as e:
        return None, "unreadable json: %s" % e


def collapse(cp, wanted):
    out = []
    for e in cp:
        n = e.get("name")
        if n in wanted and (not out or out[-1] != n):
            out.append(n)
    return out


def check_request(got, want):
    errs = []
    dur = got.get("duration_ms")
    if not isinstance(dur, (int, float)) or abs(dur - want["duration_ms"]) > TOL_MS:
        errs.append("duration %s != %.3f" % (dur, want["duration_ms"]))
    hops = got.get("hops") or []
    real = [h for h in hops if not h.get("pending")]
    used = set()
    for th in want["hops"]:
        m = [k for k, h in enumerate(real) if k not in used and h.get("via") == th["via"]
             and h.get("resource") == th["resource"]
             and isinstance(h.get("wait_ms"), (int, float))
             and abs(h["wait_ms"] - th["wait_ms"]) <= TOL_MS]
        if not m:
            errs.append("hop %s:%s wait %.3f missing (have %s)" % (
                th["via"], th["resource"], th["wait_ms"],
                ["%s:%s %s" % (h.get("via"), h.get("resource"), h.get("wait_ms")) for h in real]))
        else:
            used.add(m[0])
    if len(real) != len(want["hops"]):
        errs.append("%d hops, expected %d" % (len(real), len(want["hops"])))
    pend = [h for h in hops if h.get("pending")]
    for ph in want.get("pending", []):
        if not any(h.get("to") is None and h.get("via") == ph["via"] and h.get("resource") == ph["resource"]
                   and h.get("from") == ph["from"] for h in pend):
            errs.append("no pending hop %s:%s from %s" % (ph["via"], ph["resource"], ph["from"]))
    cp = got.get("critical_path") or []
    if not cp:
        return errs + ["empty critical path"]
    names = collapse(cp, set(want["path"]))
    if names != want["path"]:
        errs.append("path %s != %s" % (names, want["path"]))
    try:
        if abs(cp[0]["start_us"] - want["root_start_us"]) > CONTIG_US:
            errs.append("path starts at %s, the root at %s" % (cp[0]["start_us"], want["root_start_us"]))
        last = cp[-1]["start_us"] + cp[-1]["duration_ms"] * 1000
        if abs(last - want["end_us"]) > CONTIG_US:
            errs.append("path ends at %.0f, the request at %s" % (last, want["end_us"]))
        if not want["skew"]:
            total = sum(e["duration_ms"] for e in cp)
            if abs(total - (dur or 0)) > SUM_TOL_MS:
                errs.append("path sums to %.3f, not %s" % (total, dur))
            for a, b in zip(cp, cp[1:]):
                if abs(a["start_us"] + a["duration_ms"] * 1000 - b["start_us"]) > CONTIG_US:
                    errs.append("path not contiguous at %s -> %s" % (a.get("name"), b.get("name")))
                    break
    except (KeyError, TypeError) as e:
        errs.append("critical path entry lacks %s" % e)
    skews = [w for w in got.get("warnings") or [] if isinstance(w, dict) and w.get("type") == "skew"]
    if bool(skews) != want["skew"]:
        errs.append("skew warning %s, expected %s" % (bool(skews), want["skew"]))
    for pair in want["skew_pairs"]:
        if not any(w.get("spans") == pair for w in skews):
            errs.append("no skew warning naming %s" % pair)
    off = set(want["off_path"])
    on = sorted({e.get("span") for e in cp if e.get("span") in off})
    if on:
        errs.append("the path runs through the failed attempt's %s" % on)
    return errs


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    hop, db, corpus = argv[1:]
    truth = json.load(open(corpus + "/truth.json"))["requests"]
    bad = 0
    for want in truth:
        errs = []
        reqs, err = lookup(hop, db, want["apigw_request_id"])
        if reqs is None:
            errs.append("apigw id: " + err)
        elif len(reqs) != 1:
            errs.append("apigw id names %d requests" % len(reqs))
        else:
            root = reqs[0].get("root")
            errs += check_request(reqs[0], want)
            ids = [("message id", want["message_id"], 1), ("correlation id", want["correlation_id"], 1),
                   ("charge-card request id", want["process_request_id"], want["batch_size"])]
            ids += [("failed attempt", rid, want["batch_size"]) for rid in want["failed_request_ids"]]
            for what, ident, n in ids:
                rs, err = lookup(hop, db, ident)
                if rs is None:
                    errs.append("%s: %s" % (what, err))
                elif len(rs) != n:
                    errs.append("%s names %d requests, expected %d" % (what, len(rs), n))
                elif not any(r.get("root") == root for r in rs):
                    errs.append("%s does not name this request" % what)
        if errs:
            bad += 1
            if bad <= 10:
                print("request %d (%s): %s" % (want["i"], want["apigw_request_id"], "; ".join(errs)[:900]))
    print("%d/%d requests exact" % (len(truth) - bad, len(truth)))
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
