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
  requests; the two stores' `endpoints`, `functions` and `hotspots` agree.
- one root with WIDE children: one request with every span.
- a chain DEEP long: one request; `trace` of its top answers.
"""
import json
import os
import random
import shutil
import sys
import tempfile
import time

from store_util import fail, run

ROOTS = 20000
WIDE = 20000
DEEP = 3000
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


def shape(hop, work, name, write, route):
    path = os.path.join(work, name + ".ndjson")
    with open(path, "w") as out:
        write(out)
    a = os.path.join(work, name + "-a")
    b = os.path.join(work, name + "-b")
    print(name)
    timed([hop, "--db", a, "ingest", "--quiet", path], "ingest")
    timed([hop, "--db", b, "ingest", "--quiet", "--no-aggregates", path],
          "ingest --no-aggregates")
    timed([hop, "--db", b, "refresh"], "refresh")
    for q in (["endpoints"], ["functions"], ["hotspots", route]):
        ra = run([hop, "--db", a] + q + ["--format", "json"])
        rb = run([hop, "--db", b] + q + ["--format", "json"])
        if ra.returncode or rb.returncode or ra.stdout != rb.stdout:
            fail(f"{name}: {q[0]} differs between ingest and ingest + "
                 f"refresh, or fails: {ra.stderr}{rb.stderr}")
    return a


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

        db = shape(hop, work, "roots", roots, "svc")
        n = endpoint_count(hop, db)
        if n != ROOTS:
            fail(f"roots: endpoints counts {n} requests, not {ROOTS}")
        reqs = requests_of(hop, db, tid)
        if len(reqs) != ROOTS:
            fail(f"roots: trace lists {len(reqs)} requests, not {ROOTS}")

        wtid = "1-6b0cc900-0000000000000000000000a2"
        top = sid()

        def wide(out):
            seg(out, wtid, top, T0, None, "root")
            for i in range(WIDE):
                seg(out, wtid, sid(), T0 + i * 0.0001, top)

        db = shape(hop, work, "wide", wide, "root")
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

        db = shape(hop, work, "deep", deep, "svc")
        reqs = requests_of(hop, db, chain[0])
        if len(reqs) != 1:
            fail(f"deep: {len(reqs)} requests from the chain's top, not 1")
        if endpoint_count(hop, db) != 1:
            fail("deep: endpoints does not count one request")
        print("PASS")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
