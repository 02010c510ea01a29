#!/usr/bin/env python3
"""Kafka ingest against librdkafka's mock cluster on loopback.

usage: kafka_ingest.py HOPTRACE MOCK_CLUSTER

1. A payments corpus (tests/corpus/gen_corpus.py) is produced, in thirds,
   to two multi-partition topics: every X-Ray daemon datagram one message
   to `segs`, every CloudWatch Logs subscription message gzip'd one message
   to `logs` (and the Kinesis records' data), with poison messages among
   them.
2. Store B: a worker is killed with SIGKILL right after its first commit,
   the next third is produced, a second worker is killed the same way, the
   last third is produced; then it is restarted with `--until-idle`.
3. Store A, beside that restart, another group: one uninterrupted
   `ingest --kafka ... --until-idle` with `--dlq-topic`. Both stores: every
   request exact against truth; B equals A database by database (mdb_dump;
   the checkpoints' keys name the group; hop times and stage histograms
   that follow arrival order are compared by key); poison messages are in
   the dead-letter table with topic/partition/offset and on the DLQ topic.
4. A missing topic is a clear error; a bad -X setting a usage error.
5. Broker failure (on a second mock cluster, beside the other phases):
   brokers taken down through the mock API while a worker runs, brought
   back, more messages produced; the worker carries on and SIGTERM makes
   it commit and exit 0 with every request exact.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import kafka_util as ku

POISON = [b"\x00\x01\x02 not a payload", b"{ this is not json",
          b"\x1f\x8b\x08\x00garbage gzip", b""]


def ckpt_total(db, group):
    """Sum of the stored next offsets of GROUP's partitions."""
    p = subprocess.run(["mdb_dump", "-s", "checkpoints", db],
                       capture_output=True, text=True)
    if p.returncode != 0 or "HEADER=END\n" not in p.stdout:
        return 0
    lines = p.stdout.split("HEADER=END\n", 1)[1].split("\n")
    total = 0
    for i in range(0, len(lines) - 1, 2):
        if lines[i].startswith(" ") and lines[i + 1].startswith(" "):
            key = bytes.fromhex(lines[i].strip())
            val = bytes.fromhex(lines[i + 1].strip())
            if key.startswith(f"kafka:{group}:".encode()) and len(val) == 8:
                total += int.from_bytes(val, "little")
    return total


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def broker_phase(hop, helper, work, fails):
    """5. on its own mock cluster, in a thread beside the other phases"""
    mc = ku.MockCluster(helper)
    try:
        corpus2 = os.path.join(work, "corpus2")
        ku.gen_corpus(corpus2, 150, 29)
        msgs = ku.datagrams(corpus2) + ku.log_messages(corpus2)
        half = len(msgs) // 2
        mc.topic("flaky", 3)
        mc.produce("flaky", 3, msgs[:half], work)
        d = os.path.join(work, "d")
        q = subprocess.Popen([hop, "--db", d, "ingest", "--kafka",
                              mc.bootstrap, "--topic", "flaky", "--group",
                              "gd"], stderr=subprocess.PIPE, text=True)
        if not wait_for(lambda: ckpt_total(d, "gd") == half, 120):
            fails.append("broker phase: first half never committed")
        mc.command("down 1")
        mc.command("down 2")
        time.sleep(2)
        mc.command("up 1")
        mc.command("up 2")
        mc.produce("flaky", 3, msgs[half:], work)
        if not wait_for(lambda: ckpt_total(d, "gd") == len(msgs), 120):
            fails.append("broker phase: second half never committed")
        q.send_signal(signal.SIGTERM)
        _, err = q.communicate(timeout=120)
        print("D:", err.strip().splitlines()[-1:])
        if q.returncode != 0:
            fails.append(f"broker phase: exit {q.returncode}: {err}")
        ok, out = ku.check_exact(hop, d, corpus2)
        if not ok:
            fails.append("broker phase store not exact:\n" + out[-2000:])
    except Exception as e:  # reported like any failure, from the thread
        fails.append(f"broker phase: {e!r}")
    finally:
        mc.close()


def main():
    hop = os.path.abspath(sys.argv[1])
    helper = os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="ht_kafka_")
    mc = t5 = None
    fails = []
    t0 = time.time()
    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, 400, 17, stream_batch=3)
        segs = ku.datagrams(corpus)
        # poison among the good ones, on several partitions
        step = len(segs) // (len(POISON) + 1)
        for i, bad in enumerate(POISON):
            segs.insert((i + 1) * step, bad)
        logs = ku.log_messages(corpus)
        total = len(segs) + len(logs)
        mc = ku.MockCluster(helper)
        mc.topic("segs", 4)
        mc.topic("logs", 3)
        mc.topic("dead", 1)
        # produced in thirds: a worker killed after its first commit can
        # never have read everything, however fast it is
        thirds = [(segs[k * len(segs) // 3:(k + 1) * len(segs) // 3],
                   logs[k * len(logs) // 3:(k + 1) * len(logs) // 3])
                  for k in range(3)]

        def produce(k):
            mc.produce("segs", 4, thirds[k][0], work)
            mc.produce("logs", 3, thirds[k][1], work)

        produce(0)
        t5 = threading.Thread(target=broker_phase,
                              args=(hop, helper, work, fails))
        t5.start()
        print(f"producing {len(segs)} + {len(logs)} messages "
              f"({len(POISON)} poison) to {mc.bootstrap}")

        # a crashed worker's partitions are reassigned after the session
        # timeout: the smallest a broker accepts keeps the restarts short
        base = [hop, "ingest", "--kafka", mc.bootstrap, "--topic",
                "segs,logs", "-X", "session.timeout.ms=6000"]

        # 3. kill -9 mid-ingest (store B), twice
        b = os.path.join(work, "b")
        kills = 0
        for k, delay in enumerate((0.0, 0.1)):
            before = ckpt_total(b, "gb")
            q = subprocess.Popen(base + ["--db", b, "--group", "gb",
                                         "--batch", "8"],
                                 stderr=subprocess.DEVNULL)
            # kill once it has committed something new
            wait_for(lambda: ckpt_total(b, "gb") > before or
                     q.poll() is not None, 120)
            time.sleep(delay)
            if q.poll() is None:
                q.send_signal(signal.SIGKILL)
            q.wait()
            done = ckpt_total(b, "gb")
            if before < done < total:
                kills += 1
            print(f"killed at {done}/{total} messages "
                  f"({time.time() - t0:.1f} s)")
            produce(k + 1)

        # 2. uninterrupted (store A), beside the restart of B
        a = os.path.join(work, "a")
        pa = subprocess.Popen(base + ["--db", a, "--group", "ga",
                                      "--dlq-topic", "dead", "--until-idle",
                                      "2"], stderr=subprocess.PIPE, text=True)
        pb = subprocess.Popen(base + ["--db", b, "--group", "gb",
                                      "--until-idle", "2"],
                              stderr=subprocess.PIPE, text=True)
        _, err = pa.communicate(timeout=300)
        p = subprocess.CompletedProcess(pa.args, pa.returncode, "", err)
        print("A:", p.stderr.strip().splitlines()[-1:])
        if p.returncode != 0:
            fails.append(f"uninterrupted run exit {p.returncode}: {p.stderr}")
        if f"from {total} Kafka messages" not in p.stderr:
            fails.append(f"uninterrupted run did not consume {total}")
        ok, out = ku.check_exact(hop, a, corpus)
        if not ok:
            fails.append("store A not exact:\n" + out[-2000:])
        dl = subprocess.run(["mdb_dump", "-p", "-s", "dlq", a],
                            capture_output=True, text=True).stdout
        if "kafka:segs/" not in dl:
            fails.append("dead letters do not name kafka:segs/PARTITION")
        if f"rejected {len(POISON)} " not in p.stderr:
            fails.append(f"expected {len(POISON)} rejected")
        if f"produced {len(POISON)} to dead" not in p.stderr:
            fails.append(f"expected {len(POISON)} acknowledged on the DLQ "
                         f"topic: {p.stderr}")
        n, headers = mc.consume("dead")
        if n != len(POISON) or not all("hoptrace-topic=segs" in h and
                                       "hoptrace-offset=" in h
                                       for h in headers):
            fails.append(f"DLQ topic holds {n} messages, expected "
                         f"{len(POISON)}: {headers}")

        print(f"({time.time() - t0:.1f} s)")
        _, err = pb.communicate(timeout=300)
        p = subprocess.CompletedProcess(pb.args, pb.returncode, "", err)
        print("B:", p.stderr.strip().splitlines()[-1:])
        if p.returncode != 0:
            fails.append(f"restart exit {p.returncode}: {p.stderr}")
        if kills < 2:
            fails.append(f"only {kills} kills landed mid-ingest")
        if ckpt_total(b, "gb") != total:
            fails.append(f"store B checkpoints sum {ckpt_total(b, 'gb')}, "
                         f"expected {total}")
        diff = ku.compare(a, b, skip=("checkpoints",), order_free=True)
        if diff:
            fails.append(f"store B differs from store A in {diff}")
        ok, out = ku.check_exact(hop, b, corpus)
        if not ok:
            fails.append("store B not exact:\n" + out[-2000:])

        print(f"({time.time() - t0:.1f} s)")
        # 4. errors that say what to do
        p = subprocess.run([hop, "--db", os.path.join(work, "c"), "ingest",
                            "--kafka", mc.bootstrap, "--topic", "nosuch",
                            "--until-idle", "2"], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 5 or "nosuch does not exist" not in p.stderr:
            fails.append(f"missing topic: exit {p.returncode} {p.stderr}")
        p = subprocess.run([hop, "--db", os.path.join(work, "c"), "ingest",
                            "--kafka", mc.bootstrap, "--topic", "segs", "-X",
                            "no.such.setting=1"], capture_output=True,
                           text=True, timeout=120)
        if p.returncode != 2 or "no.such.setting" not in p.stderr:
            fails.append(f"bad -X: exit {p.returncode} {p.stderr}")

        t5.join()
    finally:
        if t5:
            t5.join()
        if mc:
            mc.close()
        if os.environ.get("KEEP") == "1":
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"({time.time() - t0:.1f} s)")
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print("PASS")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
