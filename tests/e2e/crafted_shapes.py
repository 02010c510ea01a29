#!/usr/bin/env python3
"""Crafted trace shapes cost time linear in their size, and answer exactly.

usage: crafted_shapes.py HOPTRACE

A trace is whatever its senders make of it: one trace id can carry tens of
thousands of root segments (a batch job reusing one id), a root can have
tens of thousands of children, a chain of parents can be thousands deep.
Each shape below is written as X-Ray segment documents, ingested (which
brings the aggregates up to date before it exits), ingested again with
--no-aggregates into a second store and caught up there by `refresh`
(its own path, the parallel one), and asked for:

- ROOTS roots in one trace: every root is a request of its own. Ingest,
  refresh and `trace <trace id>` each answer within BUDGET_S seconds (the
  per-request relinking of the trace's record and the per-node search of
  the trace's invocations made this 52 s and 22 GB for 20,000 roots);
  `endpoints` counts ROOTS requests; `trace <trace id>` lists ROOTS
  requests; serve's `/api/traces/{traceID}` is one Jaeger trace with all
  ROOTS spans; the two stores' `endpoints`, `functions` and `hotspots` agree.
- one root with WIDE children: one request with every span.
- a chain DEEP long: one request; `trace` of its top answers.
- one SQS message id recorded by PRODUCERS SendMessage calls (a reused
  id) and received by CONSUMERS invocations (a redelivery storm): every
  consumer is a hop of one producer, the first in key order, as each
  consumer's record resolves it, and of no other (each producer listed
  every consumer of every other before: 10 minutes and 3.8 GB were not
  enough for 20,000 producers and 2,000 consumers); the other producers
  are requests of their own; `trace` of a consumer's request id answers
  with that one request.
"""
import json
import os
import random
import shutil
import sys
import tempfile
import time

import serve_util
from store_util import fail, run

ROOTS = 20000
WIDE = 20000
DEEP = 3000
PRODUCERS = 4000
CONSUMERS = 400
MSG = "11111111-2222-3333-4444-555555555555"
BUDGET_S = 30.0
T0 = 1796000000.0


def seg(out, tid, sid, t, parent=None, name="svc"):
    doc = {"trace_id": tid, "id": sid, "start_time": round(t, 6),
           "end_time": round(t + 0.0005, 6), "name": name,
           "origin": "AWS::Lambda::Function"}
    if parent:
        doc["parent_id"] = parent
    out.write('{"format":"json","version":1}\n')
    out.write(json.dumps(doc, separators=(",", ":")) + "\n")


def cwl(out, group, events):
    out.write(json.dumps({
        "messageType": "DATA_MESSAGE", "owner": "123456789012",
        "logGroup": group, "logStream": "2026/11/30/[$LATEST]0",
        "subscriptionFilters": ["hoptrace"],
        "logEvents": [{"id": str(i), "timestamp": ts, "message": m}
                      for i, (ts, m) in enumerate(events)]}) + "\n")


def timed(cmd, what):
    t = time.monotonic()
    p = run(cmd)
    dt = time.monotonic() - t
    if p.returncode != 0:
        fail(f"{what}: exit {p.returncode}: {p.stderr[-600:]}")
    if dt > BUDGET_S:
        fail(f"{what}: {dt:.1f} s, over the {BUDGET_S:.0f} s budget")
    print(f"  {what}: {dt:.2f} s")
    return p


def requests_of(hop, db, ident):
    p = timed([hop, "--db", db, "trace", ident, "--format", "json"],
              f"trace {ident}")
    return json.loads(p.stdout)["requests"]


def shape(hop, work, name, writers, route=None):
    """Each writer writes one input file; they are ingested into store a,
    and with --no-aggregates then `refresh` into store b, each step within
    the budget; the two agree (`hotspots` of `route` too, when given).
    Returns store a."""
    paths = []
    for i, write in enumerate(writers):
        paths.append(os.path.join(work, f"{name}-{i}.ndjson"))
        with open(paths[-1], "w") as out:
            write(out)
    a = os.path.join(work, name + "-a")
    b = os.path.join(work, name + "-b")
    print(name)
    timed([hop, "--db", a, "ingest", "--quiet", *paths], "ingest")
    timed([hop, "--db", b, "ingest", "--quiet", "--no-aggregates", *paths],
          "ingest --no-aggregates")
    timed([hop, "--db", b, "refresh"], "refresh")
    for q in [["endpoints"], ["functions"]] + ([["hotspots", route]]
                                              if route else []):
        ra = run([hop, "--db", a] + q + ["--format", "json"])
        rb = run([hop, "--db", b] + q + ["--format", "json"])
        if ra.returncode or rb.returncode or ra.stdout != rb.stdout:
            fail(f"{name}: {q[0]} differs between ingest and ingest + "
                 f"refresh, or fails: {ra.stderr}{rb.stderr}")
    return a


def jaeger_trace(hop, db, work, tid):
    """serve's /api/traces/{traceID} of a trace id that every root shares:
    one Jaeger trace with every span, as `trace --format jaeger` and the
    search give it (it stopped at 64 requests)."""
    hexid = tid[2:10] + tid[11:]
    proc, errf, base = serve_util.start(
        [hop, "--db", db, "serve", "--listen", "127.0.0.1:0"],
        os.path.join(work, "serve.err"))
    try:
        t = time.monotonic()
        st, body = serve_util.get(base, "/api/traces/" + hexid)
        dt = time.monotonic() - t
        if st != 200:
            fail(f"roots: /api/traces/{hexid}: status {st}")
        data = json.loads(body)["data"]
        if len(data) != 1 or len(data[0]["spans"]) != ROOTS:
            fail(f"roots: /api/traces/{hexid}: {len(data)} traces, "
                 f"{[len(d['spans']) for d in data][:3]} spans, not one "
                 f"with {ROOTS}")
        print(f"  serve /api/traces/{hexid}: {dt:.2f} s")
        if dt > BUDGET_S:
            fail(f"roots: /api/traces: {dt:.1f} s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        errf.close()


def endpoint_count(hop, db):
    p = run([hop, "--db", db, "endpoints", "--format", "json"])
    if p.returncode:
        fail(f"endpoints: exit {p.returncode}: {p.stderr}")
    return sum(e["count"] for e in json.loads(p.stdout)["routes"])


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    hop = sys.argv[1]
    rnd = random.Random(7)
    ids = set()

    def sid():
        while True:
            v = "%016x" % rnd.getrandbits(64)
            if v not in ids and v != "0" * 16:
                ids.add(v)
                return v

    work = tempfile.mkdtemp(prefix="ht-shapes-")
    try:
        tid = "1-6b0cc900-0000000000000000000000a1"

        def roots(out):
            for i in range(ROOTS):
                seg(out, tid, sid(), T0 + i * 0.001)

        db = shape(hop, work, "roots", [roots], "svc")
        n = endpoint_count(hop, db)
        if n != ROOTS:
            fail(f"roots: endpoints counts {n} requests, not {ROOTS}")
        reqs = requests_of(hop, db, tid)
        if len(reqs) != ROOTS:
            fail(f"roots: trace lists {len(reqs)} requests, not {ROOTS}")
        jaeger_trace(hop, db, work, tid)

        wtid = "1-6b0cc900-0000000000000000000000a2"
        top = sid()

        def wide(out):
            seg(out, wtid, top, T0, None, "root")
            for i in range(WIDE):
                seg(out, wtid, sid(), T0 + i * 0.0001, top)

        db = shape(hop, work, "wide", [wide], "root")
        reqs = requests_of(hop, db, top)
        if len(reqs) != 1 or len(reqs[0]["spans"]) != WIDE + 1:
            fail(f"wide: {len(reqs)} requests, "
                 f"{len(reqs[0]['spans']) if reqs else 0} spans, "
                 f"not 1 with {WIDE + 1}")

        dtid = "1-6b0cc900-0000000000000000000000a3"
        chain = [sid() for _ in range(DEEP)]

        def deep(out):
            for i, s in enumerate(chain):
                seg(out, dtid, s, T0 + i * 0.0001, chain[i - 1] if i else None)

        db = shape(hop, work, "deep", [deep], "svc")
        reqs = requests_of(hop, db, chain[0])
        if len(reqs) != 1:
            fail(f"deep: {len(reqs)} requests from the chain's top, not 1")
        if endpoint_count(hop, db) != 1:
            fail("deep: endpoints does not count one request")
        producers, consumers = [], []

        def storm_segments(out):
            for i in range(PRODUCERS):
                t = T0 + i * 0.001
                s, sub = sid(), sid()
                producers.append((sub, s))
                out.write('{"format":"json","version":1}\n')
                out.write(json.dumps({
                    "trace_id": "1-6b0cc900-%024x" % rnd.getrandbits(96),
                    "id": s, "start_time": round(t, 6),
                    "end_time": round(t + 0.01, 6), "name": "send",
                    "origin": "AWS::Lambda::Function",
                    "subsegments": [{
                        "id": sub, "name": "SQS", "namespace": "aws",
                        "start_time": round(t, 6),
                        "end_time": round(t + 0.005, 6),
                        "aws": {"operation": "SendMessage",
                                "queue_url": "https://sqs.us-east-1."
                                "amazonaws.com/123456789012/q",
                                "message_id": MSG}}]},
                    separators=(",", ":")) + "\n")

        def storm_logs(out):
            for i in range(CONSUMERS):
                rid = "%08x-0000-4000-8000-%012x" % (i, rnd.getrandbits(48))
                consumers.append(rid)
                ts = int((T0 + 30 + i * 0.01) * 1000)
                ev = {"level": "INFO", "message": "Lambda invocation event",
                      "service": "consume", "function_name": "consume",
                      "function_request_id": rid,
                      "xray_trace_id": "1-6b0cc900-%024x" %
                      rnd.getrandbits(96),
                      "event": {"Records": [{
                          "messageId": MSG, "body": "{}",
                          "attributes": {
                              "ApproximateReceiveCount": str(i + 1),
                              "SentTimestamp": str(int(T0 * 1000))},
                          "eventSource": "aws:sqs",
                          "eventSourceARN":
                              "arn:aws:sqs:us-east-1:123456789012:q"}]}}
                cwl(out, "/aws/lambda/consume", [
                    (ts, json.dumps(ev)),
                    (ts + 5, "END RequestId: %s\n" % rid),
                    (ts + 5, "REPORT RequestId: %s\tDuration: 5.00 ms\t"
                     "Billed Duration: 5 ms\tMemory Size: 128 MB\t"
                     "Max Memory Used: 50 MB\t\n" % rid)])

        a = shape(hop, work, "storm", [storm_segments, storm_logs])
        reqs = requests_of(hop, a, MSG)
        if len(reqs) != PRODUCERS:
            fail(f"storm: trace of the message id lists {len(reqs)} "
                 f"requests, not one per producer ({PRODUCERS})")
        owner = min(producers)[1]  # the segment of the first SendMessage
        with_hops = [r for r in reqs if r["hops"]]
        if len(with_hops) != 1 or len(with_hops[0]["hops"]) != CONSUMERS:
            fail(f"storm: {len(with_hops)} requests have hops "
                 f"({[len(r['hops']) for r in with_hops][:5]}), not one "
                 f"with {CONSUMERS}")
        root = with_hops[0]["spans"][0]["id"]
        if root != owner:
            fail(f"storm: the consumers hang off {root}, not {owner}, "
                 "whose SendMessage is the first in key order")
        for rid in (consumers[0], consumers[-1]):
            got = requests_of(hop, a, rid)
            if len(got) != 1 or got[0]["spans"][0]["id"] != owner:
                fail(f"storm: consumer {rid} resolves to "
                     f"{[g['spans'][0]['id'] for g in got]}, not [{owner}]")
        print("PASS")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
