#!/usr/bin/env python3
"""`refresh` running while another process ingests ends with the same
aggregates as one ingest of everything.

usage: refresh_concurrent.py HOPTRACE

`refresh` (like an exiting ingest) assembles each slice's requests on
read-only threads first and writes them in a later write transaction; it
may use them only when no other process committed in between. Here a
store gets the segments of a simulated corpus, then its function logs
are ingested with --no-aggregates in small batches while `refresh` runs
again and again on the same store, so commits land between the readers
and the writer of many slices (those slices assemble again in the write
transaction). Then the stream records, and a last `refresh` alone, which
on more than one core must assemble ahead. Endpoints, hotspots and
functions must then be exactly those of a store that ingested everything
in one run, with nothing left pending.
"""
import json
import os
import re
import sys
import tempfile
import threading

from store_util import FILES, fail, run


def answers(hop, db):
    out = {}
    for cmd in (["endpoints", "--exact"], ["functions"],
                ["hotspots", "POST /orders", "--percentile", "0"]):
        r = run([hop, "--db", db] + cmd + ["--format", "json"])
        if r.returncode != 0:
            fail(f"{' '.join(cmd)} on {db}: exit {r.returncode}: {r.stderr}")
        if "not counted" in r.stderr:
            fail(f"{' '.join(cmd)} on {db} says traces are not counted: {r.stderr}")
        out[" ".join(cmd)] = json.loads(r.stdout)
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    hop = argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus")
        r = run([hop, "simulate", "--requests", "1500", "--seed", "17",
                 "--stream-batch", "3", "--out", corpus])
        if r.returncode != 0:
            fail(f"simulate: {r.stderr}")
        paths = [os.path.join(corpus, f) for f in FILES]

        whole = os.path.join(tmp, "whole")
        r = run([hop, "--db", whole, "ingest", "-q"] + paths)
        if r.returncode != 0:
            fail(f"ingest of everything: {r.stderr}")

        live = os.path.join(tmp, "live")
        r = run([hop, "--db", live, "ingest", "-q", "--no-aggregates", paths[0]])
        if r.returncode != 0:
            fail(f"ingest of the segments: {r.stderr}")

        # the logs, a few hundred values per batch, each batch its own
        # commit, while refresh runs in a loop on the same store
        done = threading.Event()
        refreshes = []

        def refresher():
            while not done.is_set():
                rr = run([hop, "--db", live, "refresh"])
                refreshes.append(rr)
                if rr.returncode != 0:
                    return

        th = threading.Thread(target=refresher)
        th.start()
        try:
            r = run([hop, "--db", live, "ingest", "-q", "--no-aggregates",
                     "--batch", "64", paths[1]])
        finally:
            done.set()
            th.join()
        if r.returncode != 0:
            fail(f"ingest of the logs beside refresh: {r.stderr}")
        bad = [x for x in refreshes if x.returncode != 0]
        if bad:
            fail(f"a refresh beside the ingest failed: exit {bad[0].returncode}: "
                 f"{bad[0].stderr}")
        # the stream records, then one refresh alone: with more than one
        # core it assembles its slices ahead
        r = run([hop, "--db", live, "ingest", "-q", "--no-aggregates", paths[2]])
        if r.returncode != 0:
            fail(f"ingest of the stream records: {r.stderr}")
        r = run([hop, "--db", live, "refresh"])
        if r.returncode != 0:
            fail(f"the last refresh: {r.stderr}")
        m = re.search(r"refreshed (\d+) traces.*; (\d+) traces assembled ahead",
                      r.stderr)
        if not m or int(m.group(1)) == 0:
            fail(f"the last refresh had nothing to do: {r.stderr}")
        if (os.cpu_count() or 1) > 1 and int(m.group(2)) == 0:
            fail(f"the last refresh, alone on {os.cpu_count()} cores, assembled "
                 f"nothing ahead: {r.stderr}")
        # how many traces the refreshes beside the ingest assembled, and of
        # those how many on reader threads (the rest: by the slices' own
        # threads, or in slices with too few traces to split)
        seen = ahead = 0
        for x in refreshes:
            m = re.search(r"refreshed (\d+) traces.*; (\d+) traces assembled ahead",
                          x.stderr)
            if not m:
                fail(f"refresh printed no summary: {x.stderr}")
            seen += int(m.group(1))
            ahead += int(m.group(2))
        print(f"{len(refreshes)} refreshes beside the ingest: {seen} traces, "
              f"{ahead} assembled ahead; the last refresh: {r.stderr.strip()}")

        a, b = answers(hop, whole), answers(hop, live)
        for k in a:
            if a[k] != b[k]:
                fail(f"`{k}` differs between one ingest and ingest beside "
                     f"refresh:\n{json.dumps(a[k])[:2000]}\n{json.dumps(b[k])[:2000]}")
        sa = json.loads(run([hop, "--db", whole, "stats", "--format", "json"]).stdout)
        sb = json.loads(run([hop, "--db", live, "stats", "--format", "json"]).stdout)
        for k in ("spans", "invocations", "keys", "aggregates_pending"):
            if sa.get(k) != sb.get(k):
                fail(f"stats {k}: {sa.get(k)} after one ingest, {sb.get(k)} beside refresh")
        print(f"OK: endpoints, functions and hotspots equal "
              f"({len(a['endpoints --exact']['routes'])} routes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
