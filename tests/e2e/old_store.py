#!/usr/bin/env python3
"""A store of an older schema is refused, by writers and readers alike,
with exit 5 and a message that says to re-ingest into a new --db folder;
an environment whose first commit has not landed is "no store yet"
(exit 1) for a query.

The old store is made with mdb_load (lmdb-utils): a meta database saying
schema version 1 and a `nodes` database, without the tables of version 2.

usage: old_store.py HOPTRACE
"""
import os
import shutil
import subprocess
import sys
import tempfile


SEGMENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "functions",
                       "segment.ndjson")


def main():
    hop = sys.argv[1]
    if not shutil.which("mdb_load"):
        print("SKIP: mdb_load (lmdb-utils) is not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="ht-old-")
    fails = []
    try:
        old = os.path.join(tmp, "old")
        os.mkdir(old)
        for dump in ("database=meta\ntype=btree\nHEADER=END\n"
                     " 736368656d615f76657273696f6e\n 01000000\nDATA=END\n",
                     "database=nodes\ntype=btree\nHEADER=END\nDATA=END\n"):
            subprocess.run(["mdb_load", old], input="VERSION=3\nformat=bytevalue\n" + dump,
                           text=True, check=True)
        for args in (["trace", "x"], ["endpoints"], ["stats"], ["stalls"],
                     ["ingest", "--quiet", SEGMENT]):
            p = subprocess.run([hop, "--db", old] + args, capture_output=True, text=True)
            if p.returncode != 5:
                fails.append("%s on an old store: exit %d" % (args[0], p.returncode))
            if "schema version 1" not in p.stderr or "re-ingest" not in p.stderr:
                fails.append("%s on an old store says %r" % (args[0], p.stderr))
            if p.stderr.count("schema version 1") != 1:
                fails.append("%s says it %d times" % (args[0], p.stderr.count("schema version 1")))
        # an LMDB environment with nothing committed yet: no store yet
        unborn = os.path.join(tmp, "unborn")
        os.mkdir(unborn)
        open(os.path.join(unborn, "data.mdb"), "wb").close()
        p = subprocess.run([hop, "--db", unborn, "trace", "x"], capture_output=True, text=True)
        if p.returncode not in (1,):
            fails.append("trace of an unborn store: exit %d %r" % (p.returncode, p.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    print("PASS" if not fails else "%d failures" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
