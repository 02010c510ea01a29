#!/usr/bin/env python3
"""`hoptrace trace` before there is a store: exit 1 ("no store yet"), never
an error, also while another process is still creating the store.

usage: trace_no_store.py HOPTRACE FIXTURES_DIR

Part of the e2e tier (tests/e2e/); runs the command as a user would. Checks:
a missing folder; a folder whose data.mdb is still empty (an ingest that has
just opened it); and a real race: queries in a loop while `ingest` creates
the store from fixtures/demo (bounded to 20 s), each answer 0 or 1.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time


def trace(hop, db, ident):
    p = subprocess.run([hop, "--db", db, "trace", ident], capture_output=True, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace")


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[3], file=sys.stderr)
        return 2
    hop, fixtures = argv[1], argv[2]
    fails = []
    tmp = tempfile.mkdtemp(prefix="hoptrace-nostore-")
    try:
        rc, err = trace(hop, os.path.join(tmp, "missing"), "abc")
        if rc != 1 or "no store yet" not in err:
            fails.append("missing folder: exit %s: %s" % (rc, err.strip()[:120]))
        unborn = os.path.join(tmp, "unborn")
        os.makedirs(unborn)
        open(os.path.join(unborn, "data.mdb"), "w").close()
        rc, err = trace(hop, unborn, "abc")
        if rc != 1 or "no store yet" not in err:
            fails.append("empty data.mdb: exit %s: %s" % (rc, err.strip()[:120]))
        db = os.path.join(tmp, "race")
        inputs = sorted(glob.glob(os.path.join(fixtures, "demo", "*.ndjson")))
        ing = subprocess.Popen([hop, "--db", db, "ingest"] + inputs,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        codes = {}
        deadline = time.monotonic() + 20
        while ing.poll() is None and time.monotonic() < deadline:
            rc, err = trace(hop, db, "no-such-request")
            codes[rc] = codes.get(rc, 0) + 1
            if rc not in (0, 1):
                fails.append("during store creation: exit %s: %s" % (rc, err.strip()[:160]))
                break
        if ing.poll() is None:
            ing.kill()
        ing.wait()
        print("answers while the store was being created: %s" % codes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print("FAIL: " + f)
    print("trace without a store: %s" % ("ok" if not fails else "%d failures" % len(fails)))
    return 0 if not fails else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
