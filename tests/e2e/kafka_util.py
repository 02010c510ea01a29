"""Shared helpers of the live-ingest end-to-end tests (Kafka, UDP, stdin).

Python has no Kafka client here, so all Kafka traffic goes through the C
helper tests/kafka/mock_cluster.c (librdkafka's mock cluster, a producer and
a consumer); these functions drive it.
"""
import base64
import gzip
import json
import os
import struct
import subprocess
import sys

import store_util

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "corpus", "gen_corpus.py")
CHECK = os.path.join(HERE, "..", "corpus", "check_traces.py")
SHARED_CHECK = os.path.join(HERE, "..", "..", "..", "shared", "tools",
                            "check_traces.py")


class MockCluster:
    """librdkafka's mock cluster on loopback (free ports chosen by it)."""

    def __init__(self, helper, brokers=3):
        self.helper = helper
        self.p = subprocess.Popen([helper, "serve", str(brokers)],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().split()
        if len(line) != 2 or line[0] != "bootstrap":
            raise RuntimeError("mock cluster did not start")
        self.bootstrap = line[1]

    def command(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer != "ok":
            raise RuntimeError(f"mock cluster: {cmd}: {answer}")

    def topic(self, name, partitions):
        self.command(f"topic {name} {partitions}")

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()

    def produce(self, topic, partitions, messages, work):
        path = os.path.join(work, f"msgs-{topic}.bin")
        write_records(path, messages)
        p = subprocess.run([self.helper, "produce", self.bootstrap, topic,
                            str(partitions), path],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0 or p.stdout.strip() != f"produced {len(messages)}":
            raise RuntimeError(f"produce failed: {p.stdout} {p.stderr}")

    def consume(self, topic, limit=60):
        """(count, headers) of TOPIC's partition 0, read to its end; the
        helper's complaint instead of headers if it never got there."""
        p = subprocess.run([self.helper, "consume", self.bootstrap, topic,
                            str(limit)], capture_output=True, text=True,
                           timeout=limit + 60)
        lines = p.stdout.splitlines()
        if p.returncode != 0 or not lines:
            return -1, [p.stderr.strip()]
        return int(lines[0].split()[1]), lines[1:]


def write_records(path, messages):
    with open(path, "wb") as f:
        for m in messages:
            f.write(struct.pack(">I", len(m)))
            f.write(m)


def gen_corpus(out, requests, seed, stream_batch=1):
    subprocess.run([sys.executable, GEN, "--requests", str(requests),
                    "--seed", str(seed), "--stream-batch", str(stream_batch),
                    "--out", out], check=True, capture_output=True)


def datagrams(corpus):
    """The X-Ray daemon datagrams of segments.ndjson: header line + doc."""
    out = []
    with open(os.path.join(corpus, "segments.ndjson"), "rb") as f:
        lines = [ln.rstrip(b"\n") for ln in f if ln.strip()]
    i = 0
    while i + 1 < len(lines):
        if lines[i].startswith(b'{"format"'):
            out.append(lines[i] + b"\n" + lines[i + 1])
            i += 2
        else:
            out.append(lines[i])
            i += 1
    return out


def log_messages(corpus):
    """Every CloudWatch Logs subscription message gzip'd (as Firehose and
    Kinesis deliver them), plus the Kinesis file's records' data."""
    out = []
    with open(os.path.join(corpus, "logs-cwl.ndjson"), "rb") as f:
        for ln in f:
            if ln.strip():
                out.append(gzip.compress(ln.strip(), mtime=0))
    kin = os.path.join(corpus, "logs-kinesis.json")
    if os.path.exists(kin):
        with open(kin) as f:
            for rec in json.load(f).get("Records", []):
                out.append(base64.b64decode(rec["Data"]))
    return out


def dump(db, skip=(), order_free=False):
    out = {}
    for name, body in store_util.logical_dump(db).items():
        if name in skip:
            continue
        if order_free and name in ("pending", "stages"):
            # a matched hop keeps the time of the half that arrived second,
            # and the stage delay histograms are fed from it: with several
            # partitions, arrival order is not fixed (the same number of
            # delays lands in other bins). Compare pending's keys and states
            # (first byte), stages' keys.
            keep = 3 if name == "pending" else 1
            lines = body.split("\n")
            for i in range(1, len(lines), 2):
                if lines[i].startswith(" ") and lines[i - 1].startswith(" "):
                    lines[i] = lines[i][:keep]
            body = "\n".join(lines)
        out[name] = body
    return out


def compare(a, b, skip=(), order_free=False):
    """-> list of database names whose contents differ. order_free: the
    stores were written in different orders (Kafka partitions)."""
    da, db_ = dump(a, skip, order_free), dump(b, skip, order_free)
    return sorted(n for n in set(da) | set(db_) if da.get(n) != db_.get(n))


def check_exact(hop, db, corpus):
    """Every request of the corpus's truth comes out exact, looked up by its
    API Gateway request id (the other ids are the corpus tests' job; these
    tests also compare whole stores with a file ingest or a single run)."""
    checker = SHARED_CHECK if os.path.exists(SHARED_CHECK) else CHECK
    p = subprocess.run([sys.executable, checker, hop, db, corpus, "--ids",
                        "apigw"], capture_output=True, text=True)
    print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else
          p.stderr.strip())
    return p.returncode == 0, p.stdout + p.stderr
