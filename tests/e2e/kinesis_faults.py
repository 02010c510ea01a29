#!/usr/bin/env python3
"""Kinesis reader through a faulty proxy, while the stream is resharded.

usage: kinesis_faults.py HOPTRACE

kinesalite (in memory, free loopback port) behind a small HTTP proxy that
- checks the SigV4 signature of every request (recomputed in Python with
  the same dummy credentials; the session token must be signed too),
- answers some calls itself with ProvisionedThroughputExceededException,
  LimitExceededException, 500 InternalFailure, 503,
  ResourceInUseException (a stream being resharded) and
  ExpiredIteratorException (seeded, so a run is reproducible),
- serves ListShards in pages of one shard with a NextToken.
Meanwhile the two-shard stream is split (shard 0) and two shards are then
merged, with records put before, between and after. The reader must:
read every record exactly once (each shard's checkpoint counts the records
PutRecords put there), drain every parent before reading its children,
retry every fault, and leave every request of the corpus exact. 40
groups of three X-Ray documents go in as KPL-aggregated records.
Exits 77 (ctest SKIP) when kinesalite is not installed.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "kinesis"))
import kinlib  # noqa: E402


def make_fault(seed):
    rnd = random.Random(seed)
    lock = threading.Lock()
    counts = {}

    def fault(op, body):
        with lock:
            x = rnd.random()
        r = None
        if op == "GetRecords":
            if x < 0.12:
                r = (400, {"__type": "ProvisionedThroughputExceededException",
                           "message": "Rate exceeded for shard"})
            elif x < 0.20:
                r = (500, {"__type": "InternalFailure",
                           "message": "internal"})
            elif x < 0.28:
                r = (400, {"__type": "ExpiredIteratorException",
                           "message": "Iterator expired."})
        elif op == "GetShardIterator" and x < 0.15:
            r = (400, {"__type": "LimitExceededException",
                       "message": "Rate exceeded"})
        elif op == "ListShards" and x < 0.15:
            r = (503, {"__type": "ServiceUnavailable", "message": "busy"})
        elif op == "ListShards" and x < 0.3:
            r = (400, {"__type": "ResourceInUseException",
                       "message": "Stream orders-events is UPDATING"})
        if r:
            with lock:
                counts[r[1]["__type"]] = counts.get(r[1]["__type"], 0) + 1
        return r

    return fault, counts


def shard_order(log):
    """From the proxy's log: for each shard, when it was drained (index of
    the GetRecords answer without NextShardIterator) and when its first
    iterator was asked for."""
    it2shard, drained, first = {}, {}, {}
    for i, (op, req, status, resp) in enumerate(log):
        if op == "GetShardIterator":
            first.setdefault(req["ShardId"], i)
            if status == 200 and resp.get("ShardIterator"):
                it2shard[resp["ShardIterator"]] = req["ShardId"]
        elif op == "GetRecords" and status == 200:
            sh = it2shard.get(req.get("ShardIterator"))
            if resp.get("NextShardIterator"):
                it2shard[resp["NextShardIterator"]] = sh
            elif sh:
                drained.setdefault(sh, i)
    return drained, first


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_kin_faults_")
    fails = []
    proxy = None
    try:
        with kinlib.Kinesalite() as k:
            stream = "orders-events"
            kinlib.create_stream(k.url, stream, 2)
            corpus = os.path.join(work, "corpus")
            kinlib.gen_corpus(corpus, 80, 23)
            recs = kinlib.corpus_records(corpus, seed=23, kpl_groups=40)
            third = len(recs) // 3
            put = {}

            def add(counts):
                for s, n in counts.items():
                    put[s] = put.get(s, 0) + n

            add(kinlib.put_records(k.url, stream, recs[:third], seed=1))
            fault, injected = make_fault(23)
            proxy = kinlib.Proxy(k.url, fault=fault, page_shards=1)
            proxy.verify_secret = kinlib.DUMMY_ENV["AWS_SECRET_ACCESS_KEY"]
            db = os.path.join(work, "db")
            cmd = [hop, "--db", db, "ingest", "--kinesis", stream,
                   "--endpoint", proxy.url, "--limit", "40",
                   "--until-idle", "3"]
            env = kinlib.hop_env({"HOPTRACE_KINESIS_BACKOFF_MS": "5"})
            p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE,
                                 text=True)
            time.sleep(0.6)
            # split shard 0 in two while it is being read
            kinlib.api(k.url, "SplitShard", {
                "StreamName": stream,
                "ShardToSplit": "shardId-000000000000",
                "NewStartingHashKey": str(2 ** 126)})
            kinlib.wait_active(k.url, stream)
            add(kinlib.put_records(k.url, stream, recs[third:2 * third],
                                   seed=2))
            time.sleep(0.6)
            # merge the upper child of the split with shard 1 (adjacent)
            kinlib.api(k.url, "MergeShards", {
                "StreamName": stream,
                "ShardToMerge": "shardId-000000000003",
                "AdjacentShardToMerge": "shardId-000000000001"})
            kinlib.wait_active(k.url, stream)
            add(kinlib.put_records(k.url, stream, recs[2 * third:], seed=3))
            try:
                _, err = p.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate()
                fails.append("the reader did not stop with --until-idle")
            line = err.strip().splitlines()[-1] if err.strip() else ""
            print("put %d records: %s" % (len(recs), put))
            print("injected: %s" % injected)
            print("reader: " + line)
            if p.returncode != 0:
                fails.append("reader exit %d: %s" % (p.returncode, err[-2000:]))
            if kinlib.DUMMY_ENV["AWS_SECRET_ACCESS_KEY"] in err or \
                    kinlib.DUMMY_ENV["AWS_SESSION_TOKEN"] in err:
                fails.append("a secret was printed")
            if "retries:" not in line or "expired iterators" not in line:
                fails.append("the summary does not count the retries")
            if proxy.bad_signatures:
                fails.append("bad SigV4 signatures: %s"
                             % sorted(set(proxy.bad_signatures)))
            if not proxy.headers or not all(
                    h.get("X-Amz-Security-Token") ==
                    kinlib.DUMMY_ENV["AWS_SESSION_TOKEN"]
                    for h in proxy.headers):
                fails.append("the session token was not sent")
            pages = [r for r in proxy.log if r[0] == "ListShards" and
                     "NextToken" in r[1]]
            if not pages:
                fails.append("ListShards paging was not followed")
            for kind in ("ProvisionedThroughputExceededException",
                         "InternalFailure", "ExpiredIteratorException"):
                if not injected.get(kind):
                    fails.append("no %s was injected" % kind)

            shards = kinlib.api(k.url, "ListShards",
                                {"StreamName": stream})["Shards"]
            print("shards: %s" % " ".join(
                "%s<-%s" % (s["ShardId"][-1], "+".join(
                    x[-1] for x in (s.get("ParentShardId"),
                                    s.get("AdjacentParentShardId")) if x))
                for s in shards))
            if len(shards) != 5:
                fails.append("kinesalite did not reshard as expected")
            drained, first = shard_order(proxy.log)
            for s in shards:
                for par in (s.get("ParentShardId"),
                            s.get("AdjacentParentShardId")):
                    if not par:
                        continue
                    if par not in drained:
                        fails.append("parent %s was never drained" % par)
                    elif first.get(s["ShardId"], -1) < drained[par]:
                        fails.append("%s was read before its parent %s was "
                                     "drained" % (s["ShardId"], par))
            ck = kinlib.checkpoints(db)
            for s in shards:
                v = ck.get("kinesis:%s:%s" % (stream, s["ShardId"]), "")
                parts = v.split()
                want = put.get(s["ShardId"], 0)
                if len(parts) != 4 or int(parts[2]) != want:
                    fails.append("checkpoint of %s is %r, want %d records"
                                 % (s["ShardId"], v, want))
                closed = "EndingSequenceNumber" in s["SequenceNumberRange"]
                if closed and (len(parts) != 4 or parts[3] != "1"):
                    fails.append("closed %s is not checkpointed as drained"
                                 % s["ShardId"])
            # every request by its API Gateway id (kinesis_resume.py
            # checks every id)
            if not kinlib.check_truth(hop, db, corpus, ids="apigw"):
                fails.append("requests not exact")
    finally:
        if proxy:
            proxy.stop()
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL: " + f)
    if fails:
        return 1
    print("PASS: kinesis faults, paging and resharding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
