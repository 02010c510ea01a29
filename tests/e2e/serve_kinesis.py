#!/usr/bin/env python3
"""`hoptrace serve --kinesis`: one process receives, stores and shows.

usage: serve_kinesis.py HOPTRACE

Starts kinesalite (in memory, free loopback port), puts a generated
payments corpus into a two-shard stream, and runs `hoptrace serve
--kinesis STREAM` on a free loopback port. Then:
- every request of the corpus becomes visible through the API while serve
  reads the stream (its API Gateway request id answers 200);
- once the store is still, /api/v1/trace/{id} equals `hoptrace trace ID
  --format json` (another process, reading the store serve writes) for
  every API Gateway id, and the requests are exact (check_traces.py);
- SIGTERM: exit 0, and each shard's checkpoint counts every record put.
Exits 77 (ctest SKIP) when kinesalite is not installed.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "kinesis"))
import kinlib  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import api_vs_cli, start, wait_still, wait_visible  # noqa: E402


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_serve_kin_")
    fails = []
    proc = None
    try:
        with kinlib.Kinesalite() as k:
            stream = "payments-events"
            kinlib.create_stream(k.url, stream, 2)
            corpus = os.path.join(work, "corpus")
            kinlib.gen_corpus(corpus, 40, 29, stream_batch=2)
            recs = kinlib.corpus_records(corpus, seed=29)
            per_shard = kinlib.put_records(k.url, stream, recs, seed=29)
            print("put %d records: %s" % (len(recs), per_shard))
            db = os.path.join(work, "db")
            proc, errf, base = start(
                [hop, "--db", db, "serve", "--listen", "127.0.0.1:0",
                 "--kinesis", stream, "--endpoint", k.url, "--region",
                 "us-east-1", "--limit", "50", "--batch", "100"],
                os.path.join(work, "serve.err"), env=kinlib.hop_env())
            with open(os.path.join(corpus, "truth.json")) as f:
                truth = json.load(f)
            ids = [r["apigw_request_id"] for r in truth["requests"]]
            # every request becomes visible while serve reads the stream
            deadline = time.time() + 120
            missing = wait_visible(base, ids, deadline)
            if missing:
                fails.append("%d requests never became visible (e.g. %s)"
                             % (len(missing), missing[0]))
            wait_still(base, deadline)
            differ = api_vs_cli(hop, db, base, ids)
            if differ:
                fails.append("%d ids answer differently through the API"
                             % differ)
            if not kinlib.check_truth(hop, db, corpus, ids="apigw"):
                fails.append("requests not exact")
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=60)
            proc = None
            print("SIGTERM: exit %d" % rc)
            if rc != 0:
                errf.seek(0)
                fails.append("exit %d after SIGTERM: %s" % (rc,
                                                            errf.read()[-800:]))
            ck = kinlib.checkpoints(db)
            for shard, n in per_shard.items():
                v = ck.get("kinesis:%s:%s" % (stream, shard), "")
                parts = v.split()
                if len(parts) != 4 or int(parts[2]) != n:
                    fails.append("checkpoint of %s is %r, want %d records"
                                 % (shard, v, n))
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["rm", "-rf", work])
    for f in fails:
        print("FAIL: " + f)
    if not fails:
        print("ok")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
