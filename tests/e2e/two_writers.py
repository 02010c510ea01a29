#!/usr/bin/env python3
"""Two writers on one store with different map sizes both survive.

usage: two_writers.py HOPTRACE

The issue's reproduction: a stdin ingest (HOPTRACE_MAP_MB=8) holds the
store open and mapped while a second ingest (HOPTRACE_MAP_MB=1) of a larger
corpus opens the same store and grows the map past the first writer's. Before, opening
with the smaller map truncated data.mdb under the first writer, which died
with SIGBUS when it next wrote. Then the first writer ingests the rest of
its stream. Both must exit 0 with nothing on stderr that says "error"
(map growth is silent), and both corpora must be in the store, exact by
their API Gateway ids.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from store_util import CHECK, FILES, fail, run


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    hop = argv[1]
    tmp = tempfile.mkdtemp(prefix="ht_2w_")
    try:
        a, b, db = (os.path.join(tmp, x) for x in ("a", "b", "db"))
        for d, n, seed in ((a, 150, 31), (b, 600, 32)):
            p = run([hop, "simulate", "--requests", str(n), "--seed", str(seed), "--out", d])
            if p.returncode != 0:
                fail(f"simulate: {p.stderr.strip()}")
        env_a = dict(os.environ, HOPTRACE_MAP_MB="8")
        env_b = dict(os.environ, HOPTRACE_MAP_MB="1")
        # writer A: a stream, first half now, the rest after B is done
        first = open(os.path.join(a, "segments.ndjson"), "rb").read()
        rest = b"".join(open(os.path.join(a, f), "rb").read() for f in FILES[1:])
        pa = subprocess.Popen([hop, "--db", db, "ingest", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_a)
        pa.stdin.write(first)
        pa.stdin.flush()
        # wait until A has committed (and so mapped and sized the file)
        deadline = time.time() + 60
        while time.time() < deadline:
            if os.path.exists(os.path.join(db, "data.mdb")):
                q = run([hop, "--db", db, "stats", "--format", "json"])
                if q.returncode == 0 and json.loads(q.stdout)["spans"] > 0:
                    break
            if pa.poll() is not None:
                fail(f"writer A ended early: {pa.returncode}")
            time.sleep(0.1)
        else:
            fail("writer A committed nothing within 60 s")
        size_a = os.stat(os.path.join(db, "data.mdb")).st_size
        # writer B: a 1 MiB map, growing many times while A is open
        pb = run([hop, "--db", db, "ingest", *[os.path.join(b, f) for f in FILES]], env=env_b)
        if pb.returncode != 0 or "error" in pb.stderr.lower():
            fail(f"writer B: exit {pb.returncode}: {pb.stderr.strip()[-400:]}")
        size_b = os.stat(os.path.join(db, "data.mdb")).st_size
        if size_b < size_a:
            fail("writer B shrank data.mdb under writer A")
        if size_b <= size_a:
            fail(f"writer B did not grow the map ({size_a} bytes): the test needs more data")
        # A goes on writing into pages beyond what B's first map covered
        try:
            out, err = pa.communicate(rest, timeout=300)
        except subprocess.TimeoutExpired:
            pa.kill()
            fail("writer A hung")
        if pa.returncode != 0 or "error" in err.decode().lower():
            fail(f"writer A: exit {pa.returncode} (negative: killed by that signal): "
                 f"{err.decode().strip()[-400:]}")
        for d in (a, b):
            p = run([sys.executable, CHECK, hop, db, d, "--ids", "apigw", "--sample", "40"])
            if p.returncode != 0:
                fail(f"{os.path.basename(d)} not exact:\n{p.stdout[-1500:]}")
        print(f"ok: two writers (8 MiB and 1 MiB maps) on one store, both exit 0; "
              f"data.mdb {size_a} -> {size_b} -> "
              f"{os.stat(os.path.join(db, 'data.mdb')).st_size} bytes")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
