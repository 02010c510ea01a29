#!/usr/bin/env python3
"""`hoptrace serve --otlp`: OpenTelemetry exports received, stored and shown
by one process.

usage: serve_otlp.py HOPTRACE FIXTURE_DIR...

For each OTLP fixture folder (its *otlp.ndjson files, X-Ray files for a
mixed request, and expected.json):
- a reference store is made with a plain file ingest of the same files;
- the X-Ray files of a mixed fixture are ingested into serve's store first;
- `hoptrace serve --listen 127.0.0.1:0 --otlp 127.0.0.1:0` starts on free
  loopback ports, each export (one line of the files) is POSTed to its
  /v1/traces as OTLP/JSON and must be answered 200 (answered once stored);
- every id that expected.json names, asked of serve's
  /api/v1/trace/{id}, answers exactly the bytes `hoptrace trace ID
  --format json` gives on the reference store, and ?format=otlp as well;
- SIGTERM: exit 0.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import wait_for  # noqa: E402


def http(url, body=None, ctype=None):
    req = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def ids_of(expected):
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
    for r in expected.get("requests", []):
        walk(r.get("ids", {}))
    return sorted(set(out))


def check(hop, fixture, work):
    name = os.path.basename(fixture.rstrip("/"))
    names = sorted(f for f in os.listdir(fixture) if f != "expected.json")
    # OTLP exports go to serve over HTTP; the X-Ray half of a mixed fixture
    # is ingested into the same store by a file ingest first
    files = [os.path.join(fixture, f) for f in names if f.endswith("otlp.ndjson")]
    others = [os.path.join(fixture, f) for f in names
              if not f.endswith("otlp.ndjson")]
    with open(os.path.join(fixture, "expected.json")) as f:
        expected = json.load(f)
    ref = os.path.join(work, name + ".ref")
    subprocess.run([hop, "--db", ref, "ingest", "--quiet"] + files + others,
                   check=True)
    db = os.path.join(work, name + ".db")
    if others:
        subprocess.run([hop, "--db", db, "ingest", "--quiet"] + others,
                       check=True)
    errf = open(os.path.join(work, name + ".serve.err"), "w+")
    proc = subprocess.Popen([hop, "--db", db, "serve", "--listen", "127.0.0.1:0",
                             "--otlp", "127.0.0.1:0"], stderr=errf)
    fails = []
    try:
        base = wait_for(errf, proc, r"serving (http://[^/\s]+)/")
        otlp = wait_for(errf, proc, r"listening on (http://\S+/v1/traces)")
        exports = 0
        for path in files:
            with open(path, "rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    st, body = http(otlp, line, "application/json")
                    exports += 1
                    if st != 200:
                        fails.append("POST %s: %d %s" % (otlp, st, body[:200]))
        ids = ids_of(expected)
        for i in ids:
            want = subprocess.run([hop, "--db", ref, "trace", i, "--format", "json"],
                                  capture_output=True)
            q = urllib.parse.quote(i, safe="")
            st, got = http(base + "/api/v1/trace/" + q)
            if want.returncode != 0 or st != 200 or got != want.stdout:
                fails.append("%s: id %s: serve %d (%d bytes), file ingest exit %d "
                             "(%d bytes)" % (name, i, st, len(got), want.returncode,
                                             len(want.stdout)))
            st, got = http(base + "/api/v1/trace/" + q + "?format=otlp")
            want = subprocess.run([hop, "--db", ref, "trace", i, "--format", "otlp"],
                                  capture_output=True)
            if st != 200 or got != want.stdout:
                fails.append("%s: id %s: ?format=otlp differs" % (name, i))
        print("%s: %d exports posted, %d ids compared" % (name, exports, len(ids)))
        if not ids:
            fails.append("%s: expected.json names no id" % name)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        if rc != 0:
            errf.seek(0)
            fails.append("%s: serve exited %s on SIGTERM: %s" % (name, rc, errf.read()[-2000:]))
        errf.close()
    return fails


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_serve_otlp_")
    fails = []
    try:
        for d in sys.argv[2:]:
            fails += check(hop, d, work)
    finally:
        if not fails:
            shutil.rmtree(work, ignore_errors=True)
    for f in fails[:40]:
        print("FAIL:", f)
    if fails:
        print("work folder kept: %s" % work)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
