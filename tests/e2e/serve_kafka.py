#!/usr/bin/env python3
"""`hoptrace serve --kafka`: one process consumes, stores and shows.

usage: serve_kafka.py HOPTRACE MOCK_CLUSTER

A payments corpus is produced to librdkafka's mock cluster (two topics:
X-Ray daemon datagrams, gzip'd CloudWatch Logs messages) and `hoptrace
serve --kafka BOOTSTRAP --topic segs,logs` runs on a free loopback port.
Every request becomes visible through /api/v1/trace/{id}; once the store
is still, each equals `hoptrace trace ID --format json` run by another
process on the store serve writes, and the requests are exact. SIGTERM:
exit 0 with the consumer group's offsets committed with the data (a second
serve of the same group reads nothing new).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kafka_util as ku  # noqa: E402
from serve_util import api_vs_cli, get, start, wait_still, wait_visible  # noqa: E402


def main():
    hop, helper = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="ht_serve_kafka_")
    fails = []
    mc = None
    procs = []
    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, 40, 31, stream_batch=2)
        segs, logs = ku.datagrams(corpus), ku.log_messages(corpus)
        mc = ku.MockCluster(helper)
        mc.topic("segs", 4)
        mc.topic("logs", 3)
        mc.produce("segs", 4, segs, work)
        mc.produce("logs", 3, logs, work)
        print("produced %d + %d messages" % (len(segs), len(logs)))
        db = os.path.join(work, "db")
        cmd = [hop, "--db", db, "serve", "--listen", "127.0.0.1:0",
               "--kafka", mc.bootstrap, "--topic", "segs,logs", "--group",
               "sv", "-X", "session.timeout.ms=6000", "--batch", "100"]
        p, errf, base = start(cmd, os.path.join(work, "serve.err"))
        procs.append(p)
        with open(os.path.join(corpus, "truth.json")) as f:
            ids = [r["apigw_request_id"] for r in json.load(f)["requests"]]
        deadline = time.time() + 120
        missing = wait_visible(base, ids, deadline)
        if missing:
            fails.append("%d requests never became visible" % len(missing))
        wait_still(base, deadline)
        differ = api_vs_cli(hop, db, base, ids)
        if differ:
            fails.append("%d ids answer differently through the API"
                         % differ)
        ok, out = ku.check_exact(hop, db, corpus)
        if not ok:
            fails.append("requests not exact: " + out[-1500:])
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
        print("SIGTERM: exit %d" % rc)
        if rc != 0:
            errf.seek(0)
            fails.append("exit %d after SIGTERM: %s" % (rc, errf.read()[-800:]))
        # the offsets were committed with the data: the group resumes at
        # the end, and a second serve ingests nothing new
        before = get_stats(hop, db)
        p2, errf2, base2 = start(cmd + ["--until-idle", "3"],
                                 os.path.join(work, "serve2.err"))
        procs.append(p2)
        time.sleep(4)
        after = json.loads(get(base2, "/api/v1/stats")[1])
        p2.send_signal(signal.SIGTERM)
        rc2 = p2.wait(timeout=60)
        if rc2 != 0 or after != before:
            fails.append("a second serve of the group changed the store or "
                         "failed (exit %d): %s vs %s" % (rc2, before, after))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if mc:
            mc.close()
        subprocess.run(["rm", "-rf", work])
    for f in fails:
        print("FAIL: " + f)
    if not fails:
        print("ok")
    return 1 if fails else 0


def get_stats(hop, db):
    return json.loads(subprocess.run([hop, "--db", db, "stats", "--format",
                                      "json"], capture_output=True,
                                     check=True).stdout)


if __name__ == "__main__":
    sys.exit(main())
