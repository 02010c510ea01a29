#!/usr/bin/env python3
"""Two or more builds of hoptrace, compared on the same ingest, paired.

usage: bench/ab_ingest.py CORPUS_DIR BASE_BIN OTHER_BIN... [--rounds N]
                          [--keep-store] [-- EXTRA INGEST ARGS]

Each round ingests CORPUS_DIR's segments.ndjson, logs-cwl.ndjson and
logs-kinesis.json (`hoptrace simulate --out` writes them) into a fresh
store with every build once, in an order that rotates and reverses from
round to round. Per build it prints wall and CPU time (the child's user +
system, all threads) as best, 25th percentile and median, and the
"paired" ratio: the median over rounds of the build's time divided by the
base build's time in the same round. A busy, shared machine moves every
build's times alike within a round, so the paired ratio sees differences
of a few percent that best-of-N comparisons across minutes cannot.

With --keep-store the last store of each build is left in
/tmp/ab_ingest.<i> (for `mdb_dump -a` comparisons).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

FILES = ("segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json")


def run_once(binary, db, corpus, extra):
    shutil.rmtree(db, ignore_errors=True)
    args = [binary, "--db", db, "ingest"] + extra
    args += [os.path.join(corpus, f) for f in FILES]
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("%s: ingest failed (exit %d)" %
                 (binary, os.waitstatus_to_exitcode(status)))
    return wall, ru.ru_utime + ru.ru_stime


def quantile(v, f):
    v = sorted(v)
    return v[int(f * (len(v) - 1))]


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    ap = argparse.ArgumentParser(
        description="paired comparison of hoptrace builds on one ingest")
    ap.add_argument("corpus")
    ap.add_argument("bins", nargs="+", metavar="BIN")
    ap.add_argument("--rounds", type=int, default=16)
    ap.add_argument("--keep-store", action="store_true")
    a = ap.parse_args(argv)
    if len(a.bins) < 2:
        ap.error("give a base build and at least one other")
    for f in FILES:
        if not os.path.isfile(os.path.join(a.corpus, f)):
            ap.error("%s has no %s (write it with `hoptrace simulate "
                     "--out DIR`)" % (a.corpus, f))
    work = tempfile.mkdtemp(prefix="ab_ingest.")
    res = {b: [] for b in a.bins}
    n = len(a.bins)
    try:
        for r in range(a.rounds):
            order = a.bins[r % n:] + a.bins[:r % n]
            if r % 2:
                order.reverse()
            for b in order:
                res[b].append(run_once(b, os.path.join(work, "db"),
                                       a.corpus, extra))
            if sys.stderr.isatty():
                print("\rround %d/%d" % (r + 1, a.rounds), end="",
                      file=sys.stderr, flush=True)
        if sys.stderr.isatty():
            print(file=sys.stderr)
        if a.keep_store:
            for i, b in enumerate(a.bins):
                run_once(b, "/tmp/ab_ingest.%d" % i, a.corpus, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = res[a.bins[0]]
    print("%d rounds; paired: median over rounds of time / %s's time"
          % (a.rounds, a.bins[0]))
    for b in a.bins:
        w = [x[0] for x in res[b]]
        c = [x[1] for x in res[b]]
        pw = statistics.median(res[b][i][0] / base[i][0]
                               for i in range(a.rounds))
        pc = statistics.median(res[b][i][1] / base[i][1]
                               for i in range(a.rounds))
        print("%-30s wall best %.3f p25 %.3f median %.3f | CPU best %.3f "
              "median %.3f | paired wall %.3f CPU %.3f"
              % (b, quantile(w, 0), quantile(w, .25), quantile(w, .5),
                 quantile(c, 0), quantile(c, .5), pw, pc))


if __name__ == "__main__":
    main()
