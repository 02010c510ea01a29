#!/usr/bin/env python3
"""Two `hoptrace ingest --kafka` processes in one consumer group, one store.

usage: kafka_group.py HOPTRACE MOCK_CLUSTER

A corpus goes to two multi-partition topics of librdkafka's mock cluster in
two halves. Worker 1 consumes the first half alone; worker 2 joins the same
group (a rebalance: worker 1 commits what it assembled for the revoked
partitions before giving them up, worker 2 seeks to the checkpoints it
finds in the shared store); the second half is produced and split between
them. Both are stopped with SIGTERM (commit, exit 0). The shared store must
equal a single worker's store database by database (only the checkpoints
and the arrival-order time of matched hops may differ) and every request
must be exact; both workers must have consumed something.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import kafka_util as ku
from kafka_ingest import ckpt_total, wait_for


def main():
    hop = os.path.abspath(sys.argv[1])
    helper = os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="ht_kgroup_")
    mc = None
    procs = []
    fails = []
    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, 300, 23, stream_batch=3)
        segs, logs = ku.datagrams(corpus), ku.log_messages(corpus)
        total = len(segs) + len(logs)
        mc = ku.MockCluster(helper)
        mc.topic("segs", 4)
        mc.topic("logs", 4)
        hs, hl = len(segs) // 2, len(logs) // 2
        mc.produce("segs", 4, segs[:hs], work)
        mc.produce("logs", 4, logs[:hl], work)

        s = os.path.join(work, "shared")
        cmd = [hop, "-v", "--db", s, "ingest", "--kafka", mc.bootstrap,
               "--topic", "segs,logs", "--group", "gs", "-X",
               "session.timeout.ms=6000"]
        errs = [os.path.join(work, f"w{i}.err") for i in (1, 2)]

        def log(i):
            with open(errs[i]) as f:
                return f.read()

        procs.append(subprocess.Popen(cmd, stderr=open(errs[0], "w")))
        if not wait_for(lambda: ckpt_total(s, "gs") == hs + hl, 120):
            fails.append("worker 1 never committed the first half")
        procs.append(subprocess.Popen(cmd, stderr=open(errs[1], "w")))
        # worker 2 has partitions once the rebalance is through
        if not wait_for(lambda: re.search(r"assigned [1-9]", log(1)), 120):
            fails.append("worker 2 was never assigned partitions")
        mc.produce("segs", 4, segs[hs:], work)
        mc.produce("logs", 4, logs[hl:], work)
        if not wait_for(lambda: ckpt_total(s, "gs") == total, 120):
            fails.append(f"the group committed {ckpt_total(s, 'gs')} of "
                         f"{total} messages")
        counts = []
        for i, p in enumerate(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=120)
            text = log(i)
            m = re.search(r"from (\d+) Kafka messages", text)
            counts.append(int(m.group(1)) if m else -1)
            print(f"worker {i + 1}: exit {p.returncode}, "
                  f"{text.strip().splitlines()[-1]}")
            if p.returncode != 0:
                fails.append(f"worker {i + 1} exit {p.returncode}")
        if min(counts) <= 0:
            fails.append(f"messages per worker {counts}: not split")
        if sum(counts) < total:
            fails.append(f"workers consumed {counts}, fewer than {total}")

        r = os.path.join(work, "single")
        p = subprocess.run([hop, "--db", r, "ingest", "--kafka",
                            mc.bootstrap, "--topic", "segs,logs", "--group",
                            "gr", "--until-idle", "2"],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            fails.append(f"single worker exit {p.returncode}: {p.stderr}")
        diff = ku.compare(r, s, skip=("checkpoints",), order_free=True)
        if diff:
            fails.append(f"the group's store differs from a single "
                         f"worker's in {diff}")
        ok, out = ku.check_exact(hop, s, corpus)
        if not ok:
            fails.append("group store not exact:\n" + out[-2000:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if mc:
            mc.close()
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print("PASS")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
