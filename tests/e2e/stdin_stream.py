#!/usr/bin/env python3
"""`hoptrace ingest -` streams: it commits as it goes, not only at EOF.

usage: stdin_stream.py HOPTRACE [MOCK_CLUSTER (unused)]

A corpus's segments, CloudWatch Logs messages (some pretty-printed over
many lines) and Kinesis records, plus a bad line, are written to
`ingest -` through a pipe that stays open: the first part must be in the
store (a trace query finds it) while the pipe is still open, as with
`tail -f | hoptrace ingest -`. At EOF the store must equal a file ingest of
the same bytes database by database (checkpoints and dead letters name the
source and differ), every request must be exact, and the same stream gzip'd
must give the same store. SIGTERM mid-stream commits and exits 0.
"""
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import kafka_util as ku


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_stdin_")
    fails = []
    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, 100, 31)
        with open(os.path.join(corpus, "segments.ndjson"), "rb") as f:
            segs = f.read()
        cwl = []
        with open(os.path.join(corpus, "logs-cwl.ndjson")) as f:
            for i, ln in enumerate(f):
                if not ln.strip():
                    continue
                if i % 4 == 0:  # pretty-printed: one value, many lines
                    ln = json.dumps(json.loads(ln), indent=2) + "\n"
                cwl.append(ln.encode())
        with open(os.path.join(corpus, "logs-kinesis.json"), "rb") as f:
            kin = f.read()
        # the first request's first segment tells when part 1 is in
        first_doc = json.loads(segs.split(b"\n")[1])
        first = first_doc["trace_id"]
        part1 = segs
        part2 = b"".join(cwl) + b"{ this is not json\n" + kin
        stream = part1 + part2
        allf = os.path.join(work, "all.json")
        with open(allf, "wb") as f:
            f.write(stream)
        ref = os.path.join(work, "ref")
        subprocess.run([hop, "--db", ref, "ingest", "--quiet", allf],
                       check=True)

        s = os.path.join(work, "s")
        p = subprocess.Popen([hop, "--db", s, "ingest", "-"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(part1)
        p.stdin.flush()
        seen = False
        end = time.time() + 60
        while time.time() < end and not seen:
            q = subprocess.run([hop, "--db", s, "trace", first, "--format",
                                "json"], capture_output=True)
            seen = q.returncode == 0
            if not seen:
                time.sleep(0.1)
        if not seen:
            fails.append("nothing was committed while stdin stayed open")
        if p.poll() is not None:
            fails.append("ingest - exited before EOF")
        p.stdin.write(part2)
        p.stdin.close()
        err = p.stderr.read().decode()
        p.wait(timeout=120)
        print("stdin:", err.strip().splitlines()[-1:])
        if p.returncode != 0:
            fails.append(f"exit {p.returncode}: {err}")
        if "rejected 1 (not_json 1)" not in err:
            fails.append("the bad line was not rejected once")
        diff = ku.compare(ref, s, skip=("checkpoints", "dlq"))
        if diff:
            fails.append(f"stdin store differs from the file ingest in {diff}")
        ok, out = ku.check_exact(hop, s, corpus)
        if not ok:
            fails.append("stdin store not exact:\n" + out[-2000:])

        g = os.path.join(work, "g")
        p = subprocess.run([hop, "--db", g, "ingest", "-"],
                           input=gzip.compress(stream), capture_output=True,
                           timeout=300)
        if p.returncode != 0:
            fails.append(f"gzip'd stdin exit {p.returncode}: {p.stderr}")
        diff = ku.compare(ref, g, skip=("checkpoints", "dlq"))
        if diff:
            fails.append(f"gzip'd stdin store differs in {diff}")

        # SIGTERM while the pipe is open: commit, exit 0
        t = os.path.join(work, "t")
        p = subprocess.Popen([hop, "--db", t, "ingest", "-"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(part1)
        p.stdin.flush()
        end = time.time() + 60
        while time.time() < end and subprocess.run(
                [hop, "--db", t, "trace", first], capture_output=True
        ).returncode != 0:
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        err = p.stderr.read().decode()
        p.wait(timeout=60)
        p.stdin.close()
        if p.returncode != 0 or "ingested" not in err:
            fails.append(f"SIGTERM: exit {p.returncode}: {err}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print("PASS")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
