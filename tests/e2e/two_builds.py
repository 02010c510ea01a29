#!/usr/bin/env python3
"""The two builds of the command line (cli/cli.h): `hoptrace` loads none of
the network libraries, answers queries itself and hands the commands that
need them to `hoptrace-full` beside it, in the same process.

Checks, with the hoptrace given and its sibling:
  1. `ldd hoptrace` names none of librdkafka, libcurl, libmicrohttpd,
     libcrypto / libssl, libgnutls (what made every process start slowly);
     hoptrace-full names librdkafka, libcurl and libmicrohttpd;
  2. a command of the full build answers through hoptrace: `serve --help`,
     `ingest --kafka B --topic T --help`, `ingest --kinesis S --help` and
     `ingest --otlp --help` print their usage and exit 0;
  3. it is the same process: `hoptrace serve` on a free loopback port
     answers /api/v1/endpoints and the pid hoptrace was
     started as is the one listening, stopped by SIGTERM with exit 0;
  4. hoptrace copied alone into another folder: `serve` and `stalls
     --alertmanager URL` exit 5 naming hoptrace-full; a query still works.
Usage: two_builds.py HOPTRACE
"""
import os
import shutil
import subprocess
import sys
import tempfile

import serve_util
from alert_util import free_port
from store_util import FILES, run

NET = ("librdkafka", "libcurl", "libmicrohttpd", "libcrypto", "libssl", "libgnutls")


def ldd(path):
    return run(["ldd", path]).stdout


def main():
    hop = os.path.abspath(sys.argv[1])
    full = os.path.join(os.path.dirname(hop), "hoptrace-full")
    errs = []

    libs = ldd(hop)
    for lib in NET:
        if lib in libs:
            errs.append(f"hoptrace loads {lib}")
    flibs = ldd(full)
    for lib in ("librdkafka", "libcurl", "libmicrohttpd"):
        if lib not in flibs:
            errs.append(f"hoptrace-full does not load {lib}")

    for args, want in ((["serve", "--help"], "serve"),
                       (["ingest", "--kafka", "b:9092", "--topic", "t", "--help"], "--kafka"),
                       (["ingest", "--kinesis", "s", "--help"], "--kinesis"),
                       (["ingest", "--otlp", "--help"], "--otlp")):
        p = run([hop] + args)
        if p.returncode != 0 or want not in p.stdout + p.stderr:
            errs.append(f"{' '.join(args)}: exit {p.returncode}: {(p.stdout + p.stderr)[-300:]}")

    work = tempfile.mkdtemp(prefix="ht-two-builds-")
    try:
        db, sim = os.path.join(work, "db"), os.path.join(work, "sim")
        for cmd in (["simulate", "--requests", "3", "--seed", "1", "--out", sim],
                    ["--db", db, "ingest", "-q"] + [os.path.join(sim, f) for f in FILES]):
            p = run([hop] + cmd)
            if p.returncode != 0:
                errs.append(f"{cmd[0]}: exit {p.returncode}: {p.stderr[-300:]}")
        srv, errf, base = serve_util.start([hop, "--db", db, "serve", "--listen", "127.0.0.1:0"],
                                           os.path.join(work, "serve.log"))
        status = serve_util.get(base, "/api/v1/endpoints")[0]
        exe = ""
        try:
            exe = os.readlink(f"/proc/{srv.pid}/exe")
        except OSError as e:
            errs.append(f"serve's pid {srv.pid}: {e}")
        rc = serve_util.stop(srv, timeout=20)
        if status != 200:
            errs.append(f"serve through hoptrace: /api/v1/endpoints answered {status}")
        if os.path.basename(exe) != "hoptrace-full":
            errs.append(f"the pid hoptrace started runs {exe!r}, not hoptrace-full")
        if rc != 0:
            errf.seek(0)
            errs.append(f"serve after SIGTERM: exit {rc}: {errf.read()[-300:]}")
        errf.close()

        solo = os.path.join(work, "solo")
        os.mkdir(solo)
        shutil.copy(hop, solo)
        lone = os.path.join(solo, os.path.basename(hop))
        for args in (["serve", "--listen", f"127.0.0.1:{free_port()}"],
                     ["stalls", "--alertmanager", "http://127.0.0.1:9/"]):
            try:
                p = subprocess.run([lone, "--db", db] + args, capture_output=True, text=True,
                                   timeout=30)
            except subprocess.TimeoutExpired:
                errs.append(f"alone, {' '.join(args)} ran on instead of naming hoptrace-full")
                continue
            if p.returncode != 5 or "hoptrace-full" not in p.stderr:
                errs.append(f"alone, {' '.join(args)}: exit {p.returncode}: {p.stderr[-300:]}")
        p = run([lone, "--db", db, "stats"])
        if p.returncode != 0:
            errs.append(f"alone, stats: exit {p.returncode}: {p.stderr[-300:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for e in errs:
        print("FAIL:", e)
    if errs:
        return 1
    print("PASS: hoptrace loads no network library and hands serve, live sources and alerts "
          "to hoptrace-full in the same process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
