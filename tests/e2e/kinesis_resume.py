#!/usr/bin/env python3
"""Kinesis reader against kinesalite: kill -9 shortly after start, restart.

usage: kinesis_resume.py HOPTRACE

Starts kinesalite (in memory, free loopback port), creates a two-shard
stream and puts a generated payments corpus into it with PutRecords
(gzip'd CloudWatch Logs subscription messages, X-Ray documents raw and
daemon-framed, the application's stream records). Runs
`hoptrace ingest --kinesis` with small GetRecords pages and small batches,
SIGKILLs it shortly after it starts (twice, at different moments), then
restarts it with --until-idle until it ends by itself. Then:
- every request of the corpus is exact (check_traces.py on truth.json);
- nothing doubled: each shard's checkpoint counts exactly the records put
  into it, and the store equals one made by ingesting the corpus files
  (every database but checkpoints and dead letters, key by key);
- a further run resumes after the stored sequence numbers and ingests 0
  documents;
- into fresh stores, --from latest reads only records put after it
  started, --from timestamp:T only those that arrived from T on; without
  --until-idle the reader stops on SIGTERM, commits and exits 0.
Exits 77 (ctest SKIP) when kinesalite is not installed.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "kinesis"))
import kinlib  # noqa: E402
import store_util  # noqa: E402

DBS = ["nodes", "inv", "facts", "keys", "pending", "by_time"]


def dump(db):
    out = {}
    for name, body in store_util.logical_dump(db, DBS).items():
        if name == "pending":
            # a matched half keeps the time of whichever half came second,
            # and the order across shards is not fixed: compare the keys
            # and states only
            lines = body.splitlines()
            body = "\n".join(ln if i % 2 == 0 else ln[:3]
                              for i, ln in enumerate(lines))
        out[name] = body
    return out


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_kin_resume_")
    fails = []
    try:
        with kinlib.Kinesalite() as k:
            stream = "payments-events"
            kinlib.create_stream(k.url, stream, 2)
            corpus = os.path.join(work, "corpus")
            kinlib.gen_corpus(corpus, 60, 17, stream_batch=3)
            recs = kinlib.corpus_records(corpus, seed=17)
            per_shard = kinlib.put_records(k.url, stream, recs, seed=17)
            print("put %d records: %s" % (len(recs), per_shard))
            if len(per_shard) != 2:
                fails.append("records did not land in both shards")
            db = os.path.join(work, "db")
            cmd = [hop, "--db", db, "ingest", "--kinesis", stream,
                   "--endpoint", k.url, "--region", "us-east-1",
                   "--limit", "20", "--batch", "50", "--until-idle", "2"]
            env = kinlib.hop_env()
            kills = 0
            for delay in (0.5, 1.2):
                p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE,
                                     text=True)
                time.sleep(delay)
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                    kills += 1
                p.communicate()
            print("killed %d times" % kills)
            if not kills:
                fails.append("the reader finished before it could be killed")
            p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                               timeout=300)
            line = p.stderr.strip().splitlines()[-1] if p.stderr else ""
            print("final run: " + line)
            if p.returncode != 0:
                fails.append("final run exit %d: %s" % (p.returncode,
                                                        p.stderr[-2000:]))
            if re.search(r"ingested 0 documents", line):
                fails.append("the kills came after everything was read")
            if "behind: shardId-000000000000=" not in line:
                fails.append("summary line lacks MillisBehindLatest")
            if kinlib.DUMMY_ENV["AWS_SECRET_ACCESS_KEY"] in p.stderr:
                fails.append("the secret key was printed")

            ck = kinlib.checkpoints(db)
            for shard, n in per_shard.items():
                v = ck.get("kinesis:%s:%s" % (stream, shard), "")
                parts = v.split()
                if len(parts) != 4 or int(parts[2]) != n:
                    fails.append("checkpoint of %s is %r, want %d records"
                                 % (shard, v, n))
            if not kinlib.check_truth(hop, db, corpus):
                fails.append("requests not exact")

            # the same corpus from files: the very same store
            ref = os.path.join(work, "ref")
            subprocess.run([hop, "--db", ref, "ingest", "--quiet",
                            os.path.join(corpus, "segments.ndjson"),
                            os.path.join(corpus, "logs-cwl.ndjson"),
                            os.path.join(corpus, "logs-kinesis.json")],
                           check=True)
            a, b = dump(ref), dump(db)
            for name in DBS:
                if a.get(name) != b.get(name):
                    fails.append("database %s differs from a file ingest of "
                                 "the same corpus" % name)

            p = subprocess.run(cmd[:-2] + ["--until-idle", "1"], env=env,
                               capture_output=True, text=True, timeout=120)
            print("rerun: " + p.stderr.strip().splitlines()[-1])
            if p.returncode != 0 or not re.search(r"ingested 0 documents",
                                                  p.stderr):
                fails.append("a rerun read records again: " + p.stderr[-500:])

            # --from latest: only what is put after the reader started;
            # --from timestamp:T: only what arrived from T on
            with open(os.path.join(corpus, "segments.ndjson"), "rb") as f:
                five = [ln.rstrip(b"\n") for ln in f
                        if not ln.startswith(b'{"format"')][:5]
            base = [hop, "ingest", "--kinesis", stream, "--endpoint", k.url]
            # through a proxy, to put the records only once the reader holds
            # its LATEST iterators
            watch = kinlib.Proxy(k.url)
            p = subprocess.Popen(base[:-1] + [watch.url, "--db",
                                              os.path.join(work, "db2"),
                                              "--from", "latest",
                                              "--until-idle", "3"], env=env,
                                 stderr=subprocess.PIPE, text=True)
            for _ in range(1200):
                with watch.lock:
                    got = sum(1 for r in watch.log
                              if r[0] == "GetShardIterator" and r[2] == 200)
                if got >= 2 or p.poll() is not None:
                    break
                time.sleep(0.05)
            t_mid = time.time()
            time.sleep(0.05)
            kinlib.put_records(k.url, stream, five, seed=5)
            _, err = p.communicate(timeout=120)
            watch.stop()
            print("latest: " + err.strip().splitlines()[-1])
            if not re.search(r"ingested 5 documents", err):
                fails.append("--from latest did not read exactly the 5 new "
                             "records: " + err[-500:])
            # without --until-idle: runs until SIGTERM, then commits and
            # exits 0 (sent once the checkpoints count the 5 records)
            db3 = os.path.join(work, "db3")
            p = subprocess.Popen(base + ["--db", db3, "--from",
                                         "timestamp:%.3f" % t_mid], env=env,
                                 stderr=subprocess.PIPE, text=True)
            for _ in range(600):
                if os.path.exists(os.path.join(db3, "data.mdb")):
                    ck = kinlib.checkpoints(db3, wait=True)
                    if sum(int(v.split()[2]) for v in ck.values()
                           if v.startswith("1 ")) >= 5:
                        break
                if p.poll() is not None:
                    break
                time.sleep(0.1)
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=120)
            print("timestamp: " + err.strip().splitlines()[-1])
            if p.returncode != 0 or not re.search(r"ingested 5 documents",
                                                  err):
                fails.append("--from timestamp then SIGTERM: exit %d, %s"
                             % (p.returncode, err[-500:]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL: " + f)
    if fails:
        return 1
    print("PASS: kinesis kill -9 and resume")
    return 0


if __name__ == "__main__":
    sys.exit(main())
