#!/usr/bin/env python3
"""X-Ray daemon UDP ingest: real datagrams on loopback.

usage: udp_ingest.py HOPTRACE [MOCK_CLUSTER (unused)]

1. A payments corpus's datagrams (header line + document, some headers with
   the whitespace other SDKs use) are sent to `ingest --udp 127.0.0.1:0`;
   the store must equal a file ingest of the same datagrams database by
   database (mdb_dump; checkpoints and dead letters name their source and
   may differ), and with the logs added every request is exact. UDP may
   drop datagrams when the kernel buffer overflows: then the replay is sent
   again (ingest is idempotent) until one pass arrives whole.
2. Malformed and oversized datagrams are counted as rejected, never crash
   the listener, and `--forward` relays every datagram byte for byte.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import kafka_util as ku


def start(hop, db, extra=()):
    p = subprocess.Popen([hop, "--db", db, "ingest", "--udp", "127.0.0.1:0"]
                         + list(extra), stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    if "listening on udp" not in line:
        p.kill()
        raise RuntimeError(f"no listening line: {line!r}")
    host, port = line.split()[-1].rsplit(":", 1)
    return p, (host, int(port))


def stop(p):
    p.send_signal(signal.SIGTERM)
    err = p.stderr.read()
    p.wait(timeout=60)
    return p.returncode, err


def received(summary):
    part = summary.split("datagrams received ", 1)[1]
    return [int(x.split()[-1]) for x in part.split(";")[0].split(",")]


def send_all(addr, dgrams):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i, d in enumerate(dgrams):
        s.sendto(d, addr)
        if i % 32 == 31:
            time.sleep(0.002)  # pacing only; losses are detected anyway
    s.close()


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_udp_")
    fails = []
    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, 300, 5)
        dgrams = ku.datagrams(corpus)
        for i in range(0, len(dgrams), 3):
            hdr, doc = dgrams[i].split(b"\n", 1)
            dgrams[i] = b'{ "format": "json", "version": 1 }\r\n' + doc
        logs = [os.path.join(corpus, "logs-cwl.ndjson"),
                os.path.join(corpus, "logs-kinesis.json")]
        f = os.path.join(work, "f")
        subprocess.run([hop, "--db", f, "ingest", "--quiet",
                        os.path.join(corpus, "segments.ndjson")], check=True)
        u = os.path.join(work, "u")
        for attempt in range(4):
            p, addr = start(hop, u)
            send_all(addr, dgrams)
            # all sent: SIGTERM makes the listener drain the socket buffer,
            # commit and exit 0
            rc, err = stop(p)
            got = received(err)
            print(f"pass {attempt + 1}: {err.strip().splitlines()[-1]}")
            if rc != 0:
                fails.append(f"exit {rc}: {err}")
                break
            if got[0] == len(dgrams):
                if got[1] != len(dgrams) or got[2] != 0:
                    fails.append(f"accepted/rejected {got[1:]}, expected "
                                 f"{len(dgrams)}/0")
                break
        else:
            fails.append("no pass arrived without loss")
        diff = ku.compare(f, u, skip=("checkpoints", "dlq"))
        if diff:
            fails.append(f"UDP store differs from the file ingest in {diff}")
        for db in (f, u):
            subprocess.run([hop, "--db", db, "ingest", "--quiet"] + logs,
                           check=True)
        ok, out = ku.check_exact(hop, u, corpus)
        if not ok:
            fails.append("UDP store not exact:\n" + out[-2000:])

        # 2. malformed, oversized; --forward relays them all unchanged
        fwd = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fwd.bind(("127.0.0.1", 0))
        fwd.settimeout(60)
        good = dgrams[1]
        bad = [
            b'{"format":"json","version":1}\n{"a":"' + b"x" * 65400,  # big
            dgrams[1].split(b"\n", 1)[1],                 # no header
            b'{"format":"xml","version":1}\n' + good.split(b"\n", 1)[1],
            b'{"format":"json","version":2}\n' + good.split(b"\n", 1)[1],
            b'{"format":"json","version":1}\n   \n',       # empty body
            b'{"format":"json","version":1}',               # header only
            bytes(range(256)) * 4,                          # binary
            b'{"format":"json","version":1}\n{"id":"nope"}',  # bad doc
        ]
        m = os.path.join(work, "m")
        p, addr = start(hop, m, ["--forward",
                                 "127.0.0.1:%d" % fwd.getsockname()[1]])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # the daemon takes "format" in any case: accepted like `good`
        mixed = b'{"format": "jSoN", "version": 1}\n' + good.split(b"\n", 1)[1]
        sent = bad + [good, mixed]
        relayed = []
        for d in sent:
            s.sendto(d, addr)
            try:
                relayed.append(fwd.recv(70000))
            except socket.timeout:
                break
        rc, err = stop(p)
        print("malformed:", err.strip().splitlines()[-1])
        if rc != 0:
            fails.append(f"malformed run exit {rc}: {err}")
        elif received(err) != [len(sent), 2, len(bad)]:
            fails.append(f"received/accepted/rejected {received(err)}, "
                         f"expected {[len(sent), 2, len(bad)]}")
        if relayed != sent:
            fails.append(f"--forward relayed {len(relayed)} datagrams, "
                         "not the same bytes")
        # a busy port is a clear error
        q = subprocess.run([hop, "--db", m, "ingest", "--udp",
                            "127.0.0.1:%d" % fwd.getsockname()[1]],
                           capture_output=True, text=True, timeout=60)
        if q.returncode != 5 or "cannot listen" not in q.stderr:
            fails.append(f"busy port: exit {q.returncode} {q.stderr}")
        fwd.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f_ in fails:
        print("FAIL:", f_)
    if not fails:
        print("PASS")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
