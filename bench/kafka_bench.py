#!/usr/bin/env python3
"""Kafka ingest throughput, end to end into the store, over librdkafka's
mock cluster on loopback.

usage: bench/kafka_bench.py BUILD_DIR [--requests N] [--seed S]

Generates a payments corpus (tests/corpus/gen_corpus.py), produces every
X-Ray daemon datagram as one message to topic `segs` (8 partitions) and
every CloudWatch Logs subscription message gzip'd as one message to `logs`
(8 partitions), then runs

    hoptrace --db DB ingest --kafka BOOTSTRAP --topic segs,logs --until-idle 2

into a fresh store and prints its summary line, which ends with the
throughput from the first message to the commit of the last one (the group
join before and the idle wait after are not counted), and the same from
the wall clock of the whole run for comparison.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import kafka_util as ku  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    hop = os.path.join(a.build, "hoptrace")
    helper = os.path.join(a.build, "tests", "mock_cluster")
    work = tempfile.mkdtemp(prefix="ht_kbench_")
    mc = None
    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, a.requests, a.seed, stream_batch=3)
        segs, logs = ku.datagrams(corpus), ku.log_messages(corpus)
        mb = (sum(map(len, segs)) + sum(map(len, logs))) / 1e6
        mc = ku.MockCluster(helper)
        mc.topic("segs", 8)
        mc.topic("logs", 8)
        mc.produce("segs", 8, segs, work)
        mc.produce("logs", 8, logs, work)
        n = len(segs) + len(logs)
        print(f"{a.requests} requests: {len(segs)} + {len(logs)} messages, "
              f"{mb:.1f} MB (message values)")
        db = os.path.join(work, "db")
        t = time.time()
        p = subprocess.run([hop, "--db", db, "ingest", "--kafka",
                            mc.bootstrap, "--topic", "segs,logs",
                            "--until-idle", "2"], capture_output=True,
                           text=True)
        wall = time.time() - t - 2
        print(p.stderr.strip().splitlines()[-1])
        print(f"wall clock incl. group join: {wall:.2f} s, "
              f"{n / wall:.0f} messages/s, {mb / wall:.1f} MB/s")
        return p.returncode
    finally:
        if mc:
            mc.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
