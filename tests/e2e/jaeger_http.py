#!/usr/bin/env python3
"""The Jaeger query API of `hoptrace serve`, over HTTP (urllib), on a corpus
no other test uses (simulate --seed 4242: SQS batches, stream batches of up
to 3, redeliveries, link-only SQS batches, stalled requests).

usage: jaeger_http.py HOPTRACE [REQUESTS]

The test starts `serve --listen 127.0.0.1:0` itself (the port it prints),
and stops it at the end, also on failure. Then:

  - acceptance (issue 13): for every request of the corpus and every id of
    it (API Gateway, Lambda request ids, trace ids, message id),
    /api/traces/{id} holds, per request `trace --format json` gives for
    that id, one trace with every span, one FOLLOWS_FROM per hop, all spans
    under one traceID, wait spans with the hop's wait (jaeger_check.py);
    and /api/traces/{that traceID} answers exactly that trace;
  - /api/services is the set of services of the requests' spans;
    /api/services/{service}/operations and /api/operations?service=… hold
    every operation of that service's spans; spanKind filters;
  - /api/traces?service=…: every request through the service, newest
    first, by its traceID; limit; start/end; minDuration; tags;
  - /api/dependencies: exactly the service edges of the requests, sync
    calls and hops, with their call counts;
  - 400 with errors[] for bad parameters, 404 for an unknown trace.
Exit 0 when all hold.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jaeger_check import check_document, jaeger_trace_id, tags_of  # noqa: E402

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, flush=True)


def get(base, path, **params):
    return get_pairs(base, path, list(params.items()))


def get_pairs(base, path, pairs):
    """GET with query parameters in order, a name possibly repeated."""
    url = base + path
    if pairs:
        url += "?" + urllib.parse.urlencode(pairs)
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, {"raw": body.decode(errors="replace")}


def start_serve(hop, db, logpath):
    """serve on a free loopback port; its stderr (where it says where it
    listens, then its log) goes to logpath."""
    log = open(logpath, "w")
    p = subprocess.Popen([hop, "--db", db, "serve", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.DEVNULL, stderr=log)
    log.close()
    deadline = time.time() + 30
    while time.time() < deadline and p.poll() is None:
        with open(logpath) as f:
            for line in f:
                if "serving http://" in line:
                    return p, line.split("serving ", 1)[1].split()[0].rstrip("/")
        time.sleep(0.05)
    p.kill()
    p.wait()
    raise RuntimeError("serve did not say where it listens")


def trace_json(hop, db, ident):
    p = subprocess.run([hop, "--db", db, "trace", ident, "--format", "json"],
                       capture_output=True, timeout=120)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout)["requests"]


def request_ids(t):
    ids = []
    for k in ("apigw_request_id", "create_request_id", "process_request_id",
              "message_id", "index_request_id", "notify_request_id"):
        if t.get(k):
            ids.append(t[k])
    ids.extend(t.get("trace_ids") or [])
    return ids


def service_of(sp):
    return sp.get("service") or sp.get("name")


def op_of(sp):
    # an AWS call: "SQS.SendMessage" (segments carry no operation)
    if sp.get("operation"):
        return "%s.%s" % (sp["name"], sp["operation"])
    return sp["name"]


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    hop = os.path.abspath(argv[1])
    n = int(argv[2]) if len(argv) > 2 else 120
    work = tempfile.mkdtemp(prefix="ht-jaeger-http-")
    corpus, db = os.path.join(work, "corpus"), os.path.join(work, "db")
    serve = None
    try:
        subprocess.run([hop, "simulate", "--seed", "4242", "--requests", str(n),
                        "--stream-batch", "3", "--redeliver", "0.1", "--link-only",
                        "0.1", "--out", corpus], check=True, capture_output=True)
        subprocess.run([hop, "--db", db, "ingest", "-q", corpus], check=True,
                       capture_output=True)
        with open(os.path.join(corpus, "truth.json")) as f:
            truth = json.load(f)["requests"]
        serve, base = start_serve(hop, db, os.path.join(work, "serve.log"))

        # ---- acceptance: every id of every request -----------------------
        roots = {}      # traceID -> the request (by its API Gateway id)
        nids = 0
        for t in truth:
            for k, ident in enumerate(request_ids(t)):
                reqs = trace_json(hop, db, ident)
                if reqs is None:
                    fail("trace %s: not found by the command" % ident)
                    continue
                st, doc = get(base, "/api/traces/" + urllib.parse.quote(ident, safe=""))
                nids += 1
                if st != 200:
                    fail("/api/traces/%s: %s %s" % (ident, st, doc))
                    continue
                for e in check_document(doc, reqs):
                    fail("/api/traces/%s: %s" % (ident, e))
                if k == 0:
                    if len(reqs) != 1:
                        fail("%s names %d requests" % (ident, len(reqs)))
                        continue
                    tid = jaeger_trace_id(reqs[0])
                    roots[tid] = reqs[0]
                    st2, doc2 = get(base, "/api/traces/" + tid)
                    if st2 != 200 or len(doc2.get("data") or []) != 1 or \
                            doc2["data"][0] != doc["data"][0]:
                        fail("/api/traces/%s (traceID of %s): %s, not the same trace" % (tid, ident, st2))
                elif ident.startswith("1-"):
                    # an X-Ray trace id written the OpenTelemetry way (32
                    # hex): the same answer as the X-Ray form
                    hexid = ident[2:10] + ident[11:]
                    st2, doc2 = get(base, "/api/traces/" + hexid)
                    if st2 != 200 or doc2.get("data") != doc["data"]:
                        fail("/api/traces/%s (%s as 32 hex): %s, not the same traces" % (hexid, ident, st2))
        print("checked %d ids of %d requests over HTTP" % (nids, len(truth)), flush=True)

        # ---- services and operations --------------------------------------
        reqs = list(roots.values())
        services = {service_of(sp) for r in reqs for sp in r["spans"]}
        st, doc = get(base, "/api/services")
        if st != 200 or set(doc["data"]) != services or doc["total"] != len(services):
            fail("/api/services: %s %s, expected %s" % (st, doc.get("data"), sorted(services)))
        for svc in sorted(services):
            ops = {op_of(sp) for r in reqs for sp in r["spans"] if service_of(sp) == svc}
            st, doc = get(base, "/api/services/%s/operations" % urllib.parse.quote(svc, safe=""))
            if st != 200 or not ops <= set(doc["data"]):
                fail("/api/services/%s/operations: %s %s lacks %s" % (svc, st, doc.get("data"), ops))
            if st == 200 and len(doc["data"]) != len(set(doc["data"])):
                fail("/api/services/%s/operations: a name twice" % svc)
            st, doc = get(base, "/api/operations", service=svc)
            names = {o["name"] for o in doc.get("data") or []}
            if st != 200 or not ops <= names:
                fail("/api/operations?service=%s: %s lacks %s" % (svc, st, ops - names))
            st, doc2 = get(base, "/api/operations", service=svc, spanKind="server")
            if st != 200 or any(o["spanKind"] != "server" for o in doc2["data"]) or \
                    len(doc2["data"]) != sum(1 for o in doc["data"] if o["spanKind"] == "server"):
                fail("/api/operations?service=%s&spanKind=server: %s" % (svc, doc2))

        # ---- search -------------------------------------------------------
        by_start = sorted(reqs, key=lambda r: -r["start_us"])
        for svc in sorted(services):
            want = [jaeger_trace_id(r) for r in by_start
                    if any(service_of(sp) == svc for sp in r["spans"])]
            st, doc = get(base, "/api/traces", service=svc, limit=1500)
            got = [t["traceID"] for t in doc.get("data") or []]
            # requests that only a batch shares with others are found too:
            # the search finds every summarized request through the
            # service; the corpus's API requests must all be there, in order
            mine = [g for g in got if g in roots]
            if st != 200 or mine != want:
                fail("/api/traces?service=%s: %d traces (%d of the corpus's), expected %d" % (
                    svc, len(got), len(mine), len(want)))
            st, doc = get(base, "/api/traces", service=svc, limit=3)
            if st != 200 or len(doc["data"]) != min(3, len(got)) or \
                    [t["traceID"] for t in doc["data"]] != got[:3]:
                fail("/api/traces?service=%s&limit=3: %s" % (svc, [t["traceID"] for t in doc.get("data") or []]))
        root_svc = service_of(next(sp for sp in by_start[0]["spans"] if sp["id"] == by_start[0]["root"]))
        mid = by_start[len(by_start) // 2]
        st, doc = get(base, "/api/traces", service=root_svc, start=mid["start_us"], end=mid["start_us"])
        if st != 200 or [t["traceID"] for t in doc["data"]] != [jaeger_trace_id(mid)]:
            fail("start=end=%d: %s" % (mid["start_us"], [t["traceID"] for t in doc.get("data") or []]))
        cut = sorted(r["duration_ms"] for r in reqs)[len(reqs) // 2]
        want = [jaeger_trace_id(r) for r in by_start if r["duration_ms"] >= cut]
        st, doc = get(base, "/api/traces", service=root_svc, limit=1500, minDuration="%.3fms" % cut)
        if st != 200 or [t["traceID"] for t in doc["data"]] != want:
            fail("minDuration=%.3fms: %d traces, expected %d" % (cut, len(doc.get("data") or []), len(want)))
        pend = [jaeger_trace_id(r) for r in by_start if any(h["pending"] for h in r["hops"])]
        st, doc = get(base, "/api/traces", service=root_svc, limit=1500,
                      tags=json.dumps({"hop.pending": "true"}))
        if st != 200 or [t["traceID"] for t in doc["data"]] != pend or not pend:
            fail("tags hop.pending=true: %d traces, expected %d" % (len(doc.get("data") or []), len(pend)))
        # tag= repeats, as in Jaeger's query parser: every pair must hold
        # on one span; with tags= too; a later value of a key wins
        via = next(h["via"] for r in by_start for h in r["hops"] if h["pending"])
        pvia = [jaeger_trace_id(r) for r in by_start
                if any(h["pending"] and h["via"] == via for h in r["hops"])]
        for name, pairs, want in [
                ("two tag=", [("tag", "hop.pending:true"), ("tag", "hop.via:" + via)], pvia),
                ("tag= and tags=", [("tag", "hop.pending:true"),
                                    ("tags", json.dumps({"hop.via": via}))], pvia),
                ("a second tag= no span has", [("tag", "hop.pending:true"),
                                               ("tag", "hop.via:no-such-via")], []),
                ("a later tag= of the same key", [("tag", "hop.via:" + via),
                                                  ("tag", "hop.via:no-such-via")], [])]:
            st, doc = get_pairs(base, "/api/traces", [("service", root_svc), ("limit", 1500)] + pairs)
            got = [t["traceID"] for t in doc.get("data") or []]
            if st != 200 or got != want or (want == [] and not pend):
                fail("%s (%s): %d traces, expected %d" % (name, pairs, len(got), len(want)))

        # ---- dependencies -------------------------------------------------
        edges = {}
        for r in reqs:
            byid = {sp["id"]: sp for sp in r["spans"]}
            for h in r["hops"]:
                if h["from"] and h["to"] and not h["pending"]:
                    a, b = service_of(byid[h["from"]]), service_of(byid[h["to"]])
                    if a != b:
                        edges[(a, b)] = edges.get((a, b), 0) + 1
        newest_ms = max(r["end_us"] for r in reqs) // 1000 + 1
        st, doc = get(base, "/api/dependencies", endTs=newest_ms, lookback=newest_ms)
        got = {(d["parent"], d["child"]): d["callCount"] for d in doc.get("data") or []}
        if st != 200:
            fail("/api/dependencies: %s" % st)
        for e, c in edges.items():
            if got.get(e, 0) < c:
                fail("/api/dependencies: %s -> %s %s calls, hops alone make %d" % (e[0], e[1], got.get(e), c))
        for a, b in [("checkout-api/live", "start-payment"), ("start-payment", "charge-card"),
                     ("charge-card", "record-ledger"), ("record-ledger", "send-receipt")]:
            if (a, b) not in got:
                fail("/api/dependencies: no %s -> %s" % (a, b))
        st, doc = get(base, "/api/dependencies", endTs=1000, lookback=1000)
        if st != 200 or doc["data"] != []:
            fail("/api/dependencies before the corpus: %s" % doc.get("data"))

        # ---- errors -------------------------------------------------------
        for path, params in [("/api/traces", {}), ("/api/traces", {"service": "x", "start": "soon"}),
                             ("/api/traces", {"service": "x", "minDuration": "3 days"}),
                             # forms Go's time.ParseDuration refuses
                             ("/api/traces", {"service": "x", "minDuration": "0x10ms"}),
                             ("/api/traces", {"service": "x", "minDuration": "1e3ms"}),
                             ("/api/traces", {"service": "x", "maxDuration": ".s"}),
                             ("/api/traces", {"service": "x", "minDuration": "2s", "maxDuration": "1s"}),
                             ("/api/traces", {"service": "x", "tags": "[1]"}),
                             ("/api/traces", {"service": "x", "limit": "many"}),
                             ("/api/operations", {}),
                             ("/api/dependencies", {"endTs": "x"})]:
            st, doc = get(base, path, **params)
            errs = doc.get("errors") or [{}]
            if st != 400 or errs[0].get("code") != 400 or not errs[0].get("msg"):
                fail("%s %s: %s %s, expected 400 with errors" % (path, params, st, doc))
        st, doc = get(base, "/api/traces/not-an-id-anyone-has")
        if st != 404 or (doc.get("errors") or [{}])[0].get("code") != 404:
            fail("unknown trace: %s %s" % (st, doc))
    finally:
        if serve is not None:
            serve.send_signal(signal.SIGTERM)
            try:
                rc = serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
                rc = serve.wait()
            if rc != 0:
                # a sanitizer's report, a crash, a hang at exit
                with open(os.path.join(work, "serve.log"), errors="replace") as f:
                    fail("serve exited %s after SIGTERM: %s" % (rc, f.read()[-3000:]))
        shutil.rmtree(work, ignore_errors=True)
    print("jaeger http: %s" % ("ok" if not FAILS else "%d failures" % len(FAILS)))
    return 0 if not FAILS else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
