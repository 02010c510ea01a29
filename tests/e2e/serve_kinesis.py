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
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "kinesis"))
import kinlib  # noqa: E402


def get(base, path):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


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
            errf = open(os.path.join(work, "serve.err"), "w+")
            proc = subprocess.Popen(
                [hop, "--db", db, "serve", "--listen", "127.0.0.1:0",
                 "--kinesis", stream, "--endpoint", k.url, "--region",
                 "us-east-1", "--limit", "50", "--batch", "100"],
                env=kinlib.hop_env(), stderr=errf)
            base = None
            deadline = time.time() + 30
            while time.time() < deadline and base is None:
                errf.seek(0)
                m = re.search(r"serving (http://[^/\s]+)/", errf.read())
                if m:
                    base = m.group(1)
                elif proc.poll() is not None:
                    break
                time.sleep(0.05)
            if not base:
                errf.seek(0)
                raise SystemExit("FAIL: serve did not start: " + errf.read())
            with open(os.path.join(corpus, "truth.json")) as f:
                truth = json.load(f)
            ids = [r["apigw_request_id"] for r in truth["requests"]]
            # every request becomes visible while serve reads the stream
            deadline = time.time() + 120
            missing = ids
            while missing and time.time() < deadline:
                missing = [i for i in missing
                           if get(base, "/api/v1/trace/" + i)[0] != 200]
                if missing:
                    time.sleep(0.2)
            print("visible through the API: %d of %d requests"
                  % (len(ids) - len(missing), len(ids)))
            if missing:
                fails.append("%d requests never became visible (e.g. %s)"
                             % (len(missing), missing[0]))
            # the store is still when stats stop changing for a second
            last, still = None, 0
            while still < 5 and time.time() < deadline:
                s = get(base, "/api/v1/stats")[1]
                still = still + 1 if s == last else 0
                last = s
                time.sleep(0.2)
            differ = 0
            for i in ids:
                api = get(base, "/api/v1/trace/" + urllib.parse.quote(i))[1]
                cli = subprocess.run([hop, "--db", db, "trace", i, "--format",
                                      "json"], capture_output=True).stdout
                if api != cli:
                    differ += 1
            print("API == CLI for %d of %d ids" % (len(ids) - differ,
                                                   len(ids)))
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
