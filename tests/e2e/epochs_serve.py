#!/usr/bin/env python3
"""Epochs under a reader that stays up: `serve` answers right while
`ingest --retain` starts epochs and drops them.

usage: epochs_serve.py HOPTRACE

1. `simulate` four windows of 150 requests, one day apart (--start).
2. Window 1 ingested with `--retain 1d` (epochs of 12 h), then `serve`
   started on the store (read-only, a free loopback port): window 1's
   requests answer 200 by their API Gateway id.
3. Windows 2, 3 and 4 ingested one after another with `--retain 1d`,
   serve running all along. After each, serve (which must open each new
   epoch's tables, and never read a dropped one's) answers the new
   window's requests 200, byte for byte as `trace --format json` does,
   `/api/v1/stats` counts what `stats --format json` counts, and
   `/api/v1/stalls` (the stall state, whose per-hop records are kept per
   epoch) is what `stalls --format json` answers as of then. After
   window 3, window 1 is gone (404): its epoch was dropped under serve.
4. serve exits 0 on SIGTERM.
Temporary folders are removed. Exit 0 only if every check passes.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

import serve_util
from store_util import FILES, fail, run

DAY = 86400
START = 1796947200  # 2026-12-11T00:00:00Z


def ids(window):
    with open(os.path.join(window, "truth.json")) as f:
        return [r["apigw_request_id"] for r in json.load(f)["requests"]]


def sample(xs):
    return xs[:: max(1, len(xs) // 25)]


def main(argv):
    hop = os.path.abspath(argv[1])
    work = tempfile.mkdtemp(prefix="ht_epochs_serve_")
    serve = None
    errs = []
    try:
        wins = []
        for i in range(4):
            w = os.path.join(work, "w%d" % i)
            p = run([hop, "simulate", "--requests", "150", "--seed", str(70 + i),
                     "--start", str(START + i * DAY), "--out", w])
            if p.returncode != 0:
                fail("simulate: %s" % p.stderr.strip())
            wins.append(w)
        db = os.path.join(work, "db")

        def ingest(w):
            p = run([hop, "--db", db, "ingest", "--retain", "1d", "--quiet"]
                    + [os.path.join(w, f) for f in FILES])
            if p.returncode != 0:
                fail("ingest %s: exit %d: %s" % (w, p.returncode, p.stderr.strip()))

        def answers(base, w, want):
            bad = []
            for i in sample(ids(w)):
                st, body = serve_util.get(base, "/api/v1/trace/" + urllib.parse.quote(i))
                if st != want:
                    bad.append("%s: %d" % (i, st))
                elif want == 200:
                    c = run([hop, "--db", db, "trace", i, "--format", "json"])
                    if json.loads(c.stdout) != json.loads(body):
                        bad.append("%s: serve and trace differ" % i)
            return bad

        def counts_agree(base, label):
            st, body = serve_util.get(base, "/api/v1/stats")
            c = run([hop, "--db", db, "stats", "--format", "json"])
            keys = ("spans", "invocations", "facts", "keys", "hops_pending")
            a, b = json.loads(body), json.loads(c.stdout)
            if st != 200 or any(a.get(k) != b.get(k) for k in keys):
                errs.append("%s: /api/v1/stats %s vs stats %s"
                            % (label, {k: a.get(k) for k in keys},
                               {k: b.get(k) for k in keys}))

        def stalls_agree(base, w, label):
            """/api/v1/stalls as of a day after window w's start is
            `stalls --format json` as of then: the stall state's per-hop
            records are kept per epoch too (hops)."""
            now = START + (wins.index(w) + 1) * DAY
            q = "/api/v1/stalls?now=%d&threshold=300s&max-stuck=1000" % now
            st, body = serve_util.get(base, q)
            c = run([hop, "--db", db, "stalls", "--format", "json", "--now", str(now),
                     "--threshold", "300s", "--max-stuck", "1000"])
            try:
                a, b = json.loads(body), json.loads(c.stdout)
            except ValueError:
                errs.append("%s: stalls unreadable (%d)" % (label, st))
                return
            if st != 200 or a != b:
                errs.append("%s: /api/v1/stalls and stalls differ" % label)
            elif not any(g["pending"] for g in a["stages"]):
                errs.append("%s: nothing waits in any stage" % label)

        ingest(wins[0])
        serve, errf, base = serve_util.start(
            [hop, "--db", db, "serve", "--listen", "127.0.0.1:0"],
            os.path.join(work, "serve.log"))
        bad = answers(base, wins[0], 200)
        if bad:
            errs.append("window 1 before any epoch: %s" % bad[:3])
        for n in (1, 2, 3):
            ingest(wins[n])
            bad = answers(base, wins[n], 200)
            if bad:
                errs.append("window %d after its ingest: %s" % (n + 1, bad[:3]))
            counts_agree(base, "after window %d" % (n + 1))
            stalls_agree(base, wins[n], "after window %d" % (n + 1))
            if n >= 2:
                gone = answers(base, wins[0], 404)
                if gone:
                    errs.append("window 1 after window %d: %s" % (n + 1, gone[:3]))
        q = run([hop, "--db", db, "stats", "--format", "json"])
        print("after 4 windows: %s" % q.stdout.strip())
        rc = serve_util.stop(serve)
        serve = None
        if rc != 0:
            errf.seek(0)
            errs.append("serve exited %d: %s" % (rc, errf.read()[-500:]))
    finally:
        if serve is not None:
            serve_util.stop(serve)
        shutil.rmtree(work, ignore_errors=True)
    for e in errs:
        print("FAIL: %s" % e)
    if errs:
        return 1
    print("ok: serve answered across 4 windows of epochs started and dropped "
          "under it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
