#!/usr/bin/env python3
"""The aggregate update in slices against one full refresh, on a corpus.

Part of the e2e tier. Writes a `hoptrace simulate` corpus (SQS batches,
batched stream consumers, stalled requests) and runs tests/test_agg on it:
ingest batches with one ht_agg_update slice after each, then slices until
nothing is dirty, must end with exactly the summary, window, histogram
and template records of one ht_agg_refresh after the whole input; prune
is checked on the same store.
usage: agg_slices.py HOPTRACE TEST_AGG N SEED STREAM_BATCH [VALUES SLICE]
(VALUES documents per batch, SLICE traces per update slice)
"""
import subprocess
import sys
import tempfile


def main():
    hop, test_agg, n, seed, sb = sys.argv[1:6]
    sizes = sys.argv[6:8]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([hop, "simulate", "--requests", n, "--seed", seed,
                        "--stream-batch", sb, "--out", tmp],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return subprocess.run([test_agg, tmp] + sizes).returncode


if __name__ == "__main__":
    sys.exit(main())
