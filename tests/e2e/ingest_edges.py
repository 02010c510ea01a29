#!/usr/bin/env python3
"""Edges of `hoptrace ingest` (files, folders, stdin) that must hold.

usage: ingest_edges.py HOPTRACE [MOCK_CLUSTER (unused)]

- A torn line on stdin (`head -c 300` of one datagram, then a whole
  segments.ndjson; with and without a newline after the torn part) loses
  that line only: the store equals a file ingest of the same bytes,
  database by database, with the same rejects, and nothing is lost; what
  follows a torn line is committed while the pipe is still open.
- One pretty-printed document missing its closing brace is ONE not_json.
- A truncated .gz: the values before the cut are stored, one `truncated`
  reject, the checkpoint does not mark it complete (a second run reads it
  again and rejects it again); --strict exits 3.
- The folder walk skips a symlink loop, a FIFO and a socket with a warning,
  and never blocks.
- A nonexistent path: exit 5, no store created, no "everything else was
  ingested"; with a good path too: the good one is ingested, exit 5.
- A store that cannot be opened: the message names the file and what to do.
- `ingest --strict` again on a file that had rejects: exit 3 and says that
  it was rejected before.
- --retain takes durations and refuses nonsense (exit 2).
- On a terminal, the progress line counts the bytes of all the files as
  they are on disk, gzip'd ones too (the oldest file being read by name,
  "file i of n"), then says what finishing does and clears it before the
  summary line; on a pipe there is neither.
"""
import gzip
import json
import os
import pty
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import kafka_util as ku


def run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(args, **kw)


def stats(hop, db):
    p = run([hop, "--db", db, "stats", "--format", "json"], text=True)
    return json.loads(p.stdout) if p.returncode == 0 else None


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_edges_")
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)
        return cond

    try:
        corpus = os.path.join(work, "corpus")
        ku.gen_corpus(corpus, 40, 5)
        with open(os.path.join(corpus, "segments.ndjson"), "rb") as f:
            segs = f.read()
        grams = ku.datagrams(corpus)

        # ---- a torn line on stdin ------------------------------------
        # the cut of `head -c 300`, and a cut inside a string (an odd
        # number of quotes before it: a bracket matcher never closes)
        odd = next(n for n in range(300, 400)
                   if grams[3][:n].count(b'"') % 2 == 1)
        for cut, sep in ((300, b"\n"), (300, b""), (odd, b"\n")):
            torn = grams[3][:cut]
            data = torn + sep + segs
            src = os.path.join(work, "torn.ndjson")
            with open(src, "wb") as f:
                f.write(data)
            ref, s = os.path.join(work, "tref"), os.path.join(work, "ts")
            for d in (ref, s):
                shutil.rmtree(d, ignore_errors=True)
            pf = run([hop, "--db", ref, "ingest", src], text=True)
            ps = run([hop, "--db", s, "ingest", "-"], input=data)
            check(pf.returncode == 0 and ps.returncode == 0,
                  f"torn line: exit {pf.returncode} / {ps.returncode}")
            diff = ku.compare(ref, s, skip=("checkpoints", "dlq"))
            check(not diff, f"torn line{' + newline' if sep else ''}: "
                  f"stdin store differs from the file ingest in {diff}")
            sf, ss = stats(hop, ref), stats(hop, s)
            for x in (sf, ss):
                if x:
                    x.pop("store_bytes", None)  # the file's checkpoint
            check(sf is not None and sf == ss,
                  f"torn line: stats differ:\n{sf}\n{ss}")
            # nothing but the torn line is lost: the whole segments alone
            whole = os.path.join(work, "whole")
            shutil.rmtree(whole, ignore_errors=True)
            run([hop, "--db", whole, "ingest", "-"], input=segs)
            sw = stats(hop, whole)
            check(sw and ss and sw.get("spans") == ss.get("spans") or
                  (sep == b"" and ss and sw and
                   ss.get("spans", 0) >= sw.get("spans", 0) - 1),
                  f"torn line: spans {ss and ss.get('spans')} vs "
                  f"{sw and sw.get('spans')} without it")
            err = ps.stderr.decode()
            check("not_json 1)" in err,
                  f"torn line: not one not_json reject: {err}")

        # ---- a torn line before more than 16 MiB (a bracket matcher's
        # cap): stdin still equals the file ingest ----------------------
        big = os.path.join(work, "big")
        run([hop, "simulate", "--requests", "2500", "--seed", "3", "--out",
             big], check=True, timeout=300)
        with open(os.path.join(big, "segments.ndjson"), "rb") as f:
            bsegs = f.read()
        check(len(bsegs) > 17 << 20, f"big corpus only {len(bsegs)} bytes")
        bdoc = bsegs.split(b"\n")[1]
        cut = next(n for n in range(300, 400)
                   if bdoc[:n].count(b'"') % 2 == 1)
        data = bdoc[:cut] + b"\n" + bsegs
        src = os.path.join(work, "bigtorn.ndjson")
        with open(src, "wb") as f:
            f.write(data)
        ref, s = os.path.join(work, "bref"), os.path.join(work, "bs")
        run([hop, "--db", ref, "ingest", "--quiet", src], timeout=300)
        run([hop, "--db", s, "ingest", "--quiet", "-"], input=data,
            timeout=300)
        sf, ss = stats(hop, ref), stats(hop, s)
        for x in (sf, ss):
            if x:
                x.pop("store_bytes", None)
        check(sf and sf.get("spans", 0) > 10000 and sf == ss,
              f"torn line before 16 MiB: stdin {ss} vs file {sf}")
        os.unlink(src)

        # ---- after a torn line, a stream still commits as it goes -----
        first = json.loads(segs.split(b"\n")[1])["trace_id"]
        d = os.path.join(work, "live")
        p = subprocess.Popen([hop, "--db", d, "ingest", "-"],
                             stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(grams[3][:300] + b"\n" + segs)
        p.stdin.flush()
        seen = False
        end = time.time() + 60
        while time.time() < end and not seen:
            q = run([hop, "--db", d, "trace", first])
            seen = q.returncode == 0
            if not seen:
                time.sleep(0.1)
        check(seen, "torn line, pipe open: nothing after it was committed "
              "before EOF")
        check(p.poll() is None, "torn line, pipe open: ingest exited")
        p.stdin.close()
        p.wait(timeout=60)
        p.stderr.close()

        # ---- pretty-printed document missing its closing brace -------
        doc = json.loads(grams[5].split(b"\n", 1)[1])
        pretty = json.dumps(doc, indent=2).rstrip()
        assert pretty.endswith("}")
        pretty = pretty[:-1]
        pp = os.path.join(work, "pretty.json")
        with open(pp, "w") as f:
            f.write(pretty + "\n")
        for how in ("file", "stdin"):
            d = os.path.join(work, "pp-" + how)
            args = [hop, "--db", d, "ingest", pp if how == "file" else "-"]
            p = run(args, input=None if how == "file" else pretty.encode())
            err = p.stderr.decode()
            check("rejected 1 (not_json 1)" in err,
                  f"pretty-printed, {how}: not one not_json reject: {err}")

        # ---- truncated gzip ------------------------------------------
        gz = gzip.compress(segs)
        tg = os.path.join(work, "cut.ndjson.gz")
        with open(tg, "wb") as f:
            f.write(gz[: len(gz) * 2 // 3])
        d = os.path.join(work, "gz")
        p = run([hop, "--db", d, "ingest", tg], text=True)
        check(p.returncode == 0, f"truncated gz: exit {p.returncode}")
        check("truncated 1" in p.stderr,
              f"truncated gz: no truncated reject: {p.stderr}")
        st = stats(hop, d)
        check(st and st.get("spans", 0) > 0,
              f"truncated gz: nothing before the cut stored: {st}")
        p2 = run([hop, "--db", d, "ingest", "--strict", tg], text=True)
        check(p2.returncode == 3 and "already ingested" not in p2.stderr and
              "truncated 1" in p2.stderr,
              f"truncated gz, second run: exit {p2.returncode}: {p2.stderr}")
        # the same on stdin
        p3 = run([hop, "--db", os.path.join(work, "gz-stdin"), "ingest", "-"],
                 input=gz[: len(gz) * 2 // 3])
        check(b"truncated 1" in p3.stderr,
              f"truncated gz on stdin: {p3.stderr}")

        # ---- folder walk: loops, FIFOs, sockets ----------------------
        tree = os.path.join(work, "tree")
        os.makedirs(os.path.join(tree, "a", "b"))
        shutil.copy(os.path.join(corpus, "segments.ndjson"),
                    os.path.join(tree, "a", "b", "segments.ndjson"))
        os.symlink("..", os.path.join(tree, "a", "b", "up"))
        os.symlink(os.path.join(tree, "a"), os.path.join(tree, "loop"))
        os.symlink("self", os.path.join(tree, "self"))
        os.mkfifo(os.path.join(tree, "a", "fifo"))
        sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sk.bind(os.path.join(tree, "a", "sock"))
        d = os.path.join(work, "walk")
        try:
            p = run([hop, "--db", d, "ingest", tree], text=True, timeout=60)
            check(p.returncode == 0, f"walk: exit {p.returncode}: {p.stderr}")
            check("FIFO" in p.stderr and "socket" in p.stderr and
                  "loop" in p.stderr,
                  f"walk: no warnings for FIFO/socket/loop: {p.stderr}")
            check("from 1 file;" in p.stderr,
                  f"walk: the file was not read exactly once: {p.stderr}")
        except subprocess.TimeoutExpired:
            fails.append("walk: blocked (FIFO) or looped")
        sk.close()

        # ---- nonexistent paths, store-open failures ------------------
        d = os.path.join(work, "none")
        p = run([hop, "--db", d, "ingest", os.path.join(work, "nope.json")],
                text=True)
        check(p.returncode == 5, f"nonexistent: exit {p.returncode}")
        check(not os.path.exists(d), "nonexistent: a store was created")
        check("everything else" not in p.stderr and "nothing was ingested" in
              p.stderr, f"nonexistent: message: {p.stderr}")
        p = run([hop, "--db", d, "ingest", os.path.join(work, "nope.json"),
                 os.path.join(corpus, "segments.ndjson")], text=True)
        check(p.returncode == 5 and stats(hop, d) and
              stats(hop, d).get("spans", 0) > 0,
              f"nonexistent + good: exit {p.returncode}: {p.stderr}")
        bad = os.path.join(work, "badstore")
        os.makedirs(bad)
        with open(os.path.join(bad, "data.mdb"), "wb") as f:
            f.write(b"this is not an LMDB file" * 1000)
        p = run([hop, "--db", bad, "ingest",
                 os.path.join(corpus, "segments.ndjson")], text=True)
        check(p.returncode == 5 and os.path.join(bad, "data.mdb") in
              p.stderr and "--db" in p.stderr,
              f"store-open failure: exit {p.returncode}: {p.stderr}")

        # ---- --strict again on a file that had rejects ---------------
        rj = os.path.join(work, "rej.ndjson")
        with open(rj, "wb") as f:
            f.write(segs + b"{ not json\n")
        d = os.path.join(work, "strict")
        p1 = run([hop, "--db", d, "ingest", "--strict", rj], text=True)
        p2 = run([hop, "--db", d, "ingest", "--strict", rj], text=True)
        check(p1.returncode == 3, f"strict: first run exit {p1.returncode}")
        check(p2.returncode == 3 and "rejected" in p2.stderr and
              "before" in p2.stderr,
              f"strict again: exit {p2.returncode}: {p2.stderr}")
        p3 = run([hop, "--db", d, "ingest", rj], text=True)
        check(p3.returncode == 0, f"non-strict again: exit {p3.returncode}")

        # ---- --retain -------------------------------------------------
        d = os.path.join(work, "retain")
        for good in ("48h", "2d", "90m"):
            p = run([hop, "--db", d, "ingest", "--retain", good, "--quiet",
                     os.path.join(corpus, "segments.ndjson")], text=True)
            check(p.returncode == 0, f"--retain {good}: exit {p.returncode}")
        for bad_v in ("soon", "-2d", "0"):
            p = run([hop, "--db", d, "ingest", "--retain", bad_v,
                     os.path.join(corpus, "segments.ndjson")], text=True)
            check(p.returncode == 2 and "--retain" in p.stderr,
                  f"--retain {bad_v}: exit {p.returncode}: {p.stderr}")
        p = run([hop, "ingest", "--help"], text=True)
        check("--retain DURATION" in p.stdout, "--help lacks --retain")

        # ---- progress on a terminal -------------------------------------
        def on_tty(args):
            m, s = pty.openpty()
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=s)
            os.close(s)
            out = b""
            while True:
                try:
                    b = os.read(m, 65536)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not b:
                    break
                out += b
            os.close(m)
            return p.wait(timeout=120), out.decode("utf-8", "replace")

        names = ("segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json")
        files = [os.path.join(corpus, n) for n in names]
        total = sum(os.path.getsize(f) for f in files)
        rc, out = on_tty([hop, "--db", os.path.join(work, "tty"), "ingest"] + files)
        # one file being read: "NAME (file I of N)"; several (they are
        # read interleaved): "NAME and K more (files I-J of N)"
        shown = re.findall(r"\r\x1b\[Kingesting (\S+)(?: and (\d+) more \(files (\d+)-(\d+)"
                           r"| \(file (\d+)) of (\d+)\): "
                           r"([\d.]+) of ([\d.]+) MB \((\d+)%\), (\d+) documents", out)
        check(rc == 0 and shown, f"tty: exit {rc}, no progress line: {out[-500:]!r}")
        # the first line comes after the first slice, all three files open
        check(not shown or shown[0][1:4] == ("2", "1", "3"),
              f"tty: the first progress line does not name the three files being "
              f"read: {shown[:1]}")
        for name, more, i, j, one, n, done, of, pct, _ in shown:
            i, j = (int(i), int(j)) if more else (int(one), int(one))
            check(name in files and n == "3" and 1 <= i <= j <= 3 and
                  (not more or (int(more) >= 1 and j - i >= int(more))) and
                  files.index(name) == i - 1 and
                  abs(float(of) - total / 1e6) < 0.051 and float(done) <= float(of) and
                  0 <= int(pct) <= 100,
                  f"tty: progress {name} (+{more or 0}) files {i}-{j} of {n}: {done} of "
                  f"{of} MB ({pct}%), the files hold {total / 1e6:.2f} MB")
        check(re.search(r"\r\x1b\[Kfinishing: request summaries and retention\.\.\."
                        r"\r\x1b\[Khoptrace: ingested \d+ documents .*; \d+ request "
                        r"summaries written in \d+ slices? \(\d+\.\d{3} s\)\r?\n$", out),
              f"tty: no 'finishing' cleared before the summary line: {out[-400:]!r}")
        gzd = os.path.join(work, "gzd")
        os.makedirs(gzd)
        with open(files[0], "rb") as f, gzip.open(os.path.join(gzd, "a.ndjson.gz"), "wb") as g:
            g.write(f.read())
        shutil.copy(files[1], os.path.join(gzd, "b.ndjson"))
        rc, out = on_tty([hop, "--db", os.path.join(work, "tty-gz"), "ingest", gzd])
        ondisk = sum(os.path.getsize(os.path.join(gzd, n)) for n in os.listdir(gzd))
        shown = re.findall(r"ingesting \S+ (?:and 1 more \(files 1-2|\(file [12]) of 2\): "
                           r"([\d.]+) of ([\d.]+) MB \((\d+)%\), \d+ documents", out)
        # the share of the files' bytes on disk: a gzip stream's inflated
        # offset never goes into it (it would pass 100 %)
        check(rc == 0 and shown and
              all(abs(float(of) - ondisk / 1e6) < 0.051 and float(done) <= float(of) and
                  int(pct) <= 100 for done, of, pct in shown),
              f"tty, a gzip'd file: progress not over the {ondisk} bytes on disk: {out[-500:]!r}")
        p = run([hop, "--db", os.path.join(work, "pipe"), "ingest"] + files, text=True)
        check(p.returncode == 0 and "ingesting " not in p.stderr and
              "finishing" not in p.stderr and "\x1b" not in p.stderr,
              f"a pipe: progress or escapes on stderr: {p.stderr[-300:]!r}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL:", f)
    if not fails:
        print("PASS")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
