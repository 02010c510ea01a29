#!/usr/bin/env python3
"""Bad input never crashes hoptrace: mutated copies of real inputs.

usage: mutate_inputs.py HOPTRACE FIXTURES_DIR

Takes every input file of the fixtures, makes deterministic mutated copies
(flipped bytes, truncations, duplicated and dropped lines, broken gzip and
base64), ingests them all into one store and then looks up ids found in
them. Every run must end by itself with a documented exit status (0, 1, 3),
never by a signal or a sanitizer report.
"""
import base64
import gzip
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

CHARS = b'{}[]",:\\0123456789abcdefxyz \n\t\x00\xff'


def mutate(data, rnd):
    lines = data.split(b"\n")
    out = []
    for line in lines:
        r = rnd.random()
        b = bytearray(line)
        if b and r < 0.25:
            for _ in range(rnd.randint(1, 6)):
                b[rnd.randrange(len(b))] = rnd.choice(CHARS)
        elif b and r < 0.35:
            b = b[: rnd.randrange(len(b))]
        elif r < 0.40:
            continue
        elif r < 0.45:
            out.append(bytes(b))
        out.append(bytes(b))
    return b"\n".join(out)


def main():
    hop = os.path.abspath(sys.argv[1])
    fixtures = sys.argv[2]
    rnd = random.Random(20261126)
    work = tempfile.mkdtemp(prefix="ht_mutate_")
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    bad = 0
    try:
        inputs = []
        for d in sorted(os.listdir(fixtures)):
            p = os.path.join(fixtures, d)
            if not os.path.isdir(p) or d in ("gen", "demo"):
                continue
            for f in sorted(os.listdir(p)):
                if f != "expected.json" and not f.endswith(".md"):
                    inputs.append(os.path.join(p, f))
        files = []
        for i, src in enumerate(inputs):
            raw = open(src, "rb").read()
            if src.endswith(".gz"):
                raw = gzip.decompress(raw)
            for k in range(3):
                m = mutate(raw, rnd)
                dst = os.path.join(work, f"m{i}_{k}.ndjson")
                if k == 2:
                    z = gzip.compress(m)
                    z = z[: max(10, len(z) - rnd.randrange(1, 40))]
                    dst += ".gz"
                    m = z
                open(dst, "wb").write(m)
                files.append(dst)
        # a base64 blob that is not gzip, and gzip that is not JSON
        open(os.path.join(work, "blob.json"), "w").write(
            '{"Records":[{"Data":"%s"},{"Data":"!!"}]}\n' %
            base64.b64encode(gzip.compress(b"\x00\x01garbage")).decode())
        files.append(os.path.join(work, "blob.json"))
        db = os.path.join(work, "db")
        p = subprocess.run([hop, "--db", db, "ingest", "--quiet"] + files,
                           capture_output=True, env=env, timeout=600)
        if p.returncode not in (0, 3) or b"Sanitizer" in p.stderr:
            print(f"ingest exit {p.returncode}: {p.stderr[-2000:].decode(errors='replace')}")
            bad += 1
        ids = set()
        for f in files[:60]:
            try:
                text = open(f, "rb").read().decode(errors="replace")
            except OSError:
                continue
            ids.update(re.findall(r"[0-9a-f]{16}|1-[0-9a-f]{8}-[0-9a-f]{24}|"
                                  r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                  r"[0-9a-f]{4}-[0-9a-f]{12}", text))
        for ident in sorted(ids)[:400]:
            for fmt in ("json", "dot", "text"):
                q = subprocess.run([hop, "--db", db, "trace", ident,
                                    "--format", fmt], capture_output=True,
                                   env=env, timeout=60)
                if q.returncode not in (0, 1) or b"Sanitizer" in q.stderr:
                    print(f"trace {ident} --format {fmt}: exit "
                          f"{q.returncode}: {q.stderr[-1500:].decode(errors='replace')}")
                    bad += 1
                    break
        print(f"{len(files)} mutated files, {min(len(ids), 400)} ids traced, "
              f"{bad} failures")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
