#!/usr/bin/env python3
"""Hold `hoptrace simulate` to its truth.

usage: simulate_truth.py HOPTRACE N SEED [STREAM_BATCH [FULL]]

1. `hoptrace simulate --requests N --seed SEED --stream-batch K` twice into
   two folders: byte-identical output (deterministic per seed); a third run
   with another seed differs.
2. tests/corpus/derive_truth.py: the truth agrees with the raw documents,
   re-derived independently of the generator.
3. The corpus has what it promises: the three input files, cold starts,
   SQS batches > 1, stalled requests, X-Ray links, stale log lines,
   subscription messages in both log files.
4. `--format gzip` writes the same three files gzip-compressed, and they
   ingest to the same answers (API Gateway ids of a sample of requests).
5. `hoptrace ingest` of the three files into a fresh store, then
   check_traces.py (../shared/tools, else tests/corpus's) on truth.json and,
   with K > 1, check_extra.py on truth-extra.json: every request exact.
   With FULL < N (to keep the test short under sanitizers), every request
   is checked by its API Gateway id (duration, hops, critical path) and
   FULL requests spread over the corpus by every id they have.
Temporary folders are removed.  Exit 0 only if every step passes.
"""
import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_TOOLS = os.path.join(HERE, "..", "corpus")
FILES = ["segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json"]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def simulate(hop, out, n, seed, k, fmt="sample"):
    p = run([hop, "simulate", "--requests", str(n), "--seed", str(seed),
             "--stream-batch", str(k), "--out", out, "--format", fmt])
    if p.returncode != 0:
        raise SystemExit(f"FAIL: simulate exit {p.returncode}: {p.stderr.strip()}")
    return p.stderr.strip()


def read(path):
    with open(path, "rb") as f:
        return f.read()


def getrecords_pages(path):
    """logs-kinesis.json is GetRecords responses one after the other."""
    text, dec, i, out = open(path).read(), json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        page, i = dec.raw_decode(text, i)
        out.append(page)


def shape(d):
    """What the corpus must contain, counted from the documents."""
    lines = read(os.path.join(d, "segments.ndjson")).decode().split("\n")
    docs = [json.loads(lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    assert all(json.loads(lines[i]) == {"format": "json", "version": 1}
               for i in range(0, len(lines) - 1, 2)), "daemon header lines"
    cwl = [json.loads(l) for l in open(os.path.join(d, "logs-cwl.ndjson")) if l.strip()]
    kin = [r for page in getrecords_pages(os.path.join(d, "logs-kinesis.json"))
           for r in page["Records"]]
    msgs = cwl + [json.loads(gzip.decompress(base64.b64decode(r["Data"]))) for r in kin]
    events = [e["message"] for m in msgs for e in m["logEvents"]]
    truth = json.load(open(os.path.join(d, "truth.json")))["requests"]
    return {
        "documents": len(docs),
        "cwl messages": len(cwl),
        "kinesis messages": len(kin),
        "cold starts": sum(1 for d_ in docs for s in d_.get("subsegments", [])
                           if s.get("name") == "Initialization")
        + sum(1 for d_ in docs if d_.get("name") == "Initialization"),
        "links": sum(1 for d_ in docs if "links" in d_),
        "streamed subsegments": sum(1 for d_ in docs if d_.get("type") == "subsegment"),
        "stale lines": sum(1 for e in events if '"records":' in e),
        "sqs batches > 1": sum(1 for t in truth if t["batch_size"] > 1),
        "stalled": sum(1 for t in truth if t["stalled"]),
        "requests": len(truth),
    }


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    hop = os.path.abspath(argv[1])
    n, seed = int(argv[2]), int(argv[3])
    k = int(argv[4]) if len(argv) > 4 else 1
    full = int(argv[5]) if len(argv) > 5 else n
    work = tempfile.mkdtemp(prefix="ht-simulate-")
    try:
        a, b, c = (os.path.join(work, x) for x in ("a", "b", "c"))
        print(simulate(hop, a, n, seed, k))
        simulate(hop, b, n, seed, k)
        simulate(hop, c, n, seed + 1, k)
        names = FILES + ["truth.json"] + (["truth-extra.json"] if k > 1 else [])
        for f in names:
            if read(os.path.join(a, f)) != read(os.path.join(b, f)):
                print(f"FAIL: {f} differs between two runs with seed {seed}")
                return 1
        if read(os.path.join(a, "truth.json")) == read(os.path.join(c, "truth.json")):
            print("FAIL: seeds {seed} and {seed + 1} give the same corpus")
            return 1
        g = os.path.join(work, "g")
        simulate(hop, g, n, seed, k, "gzip")
        for f in FILES:
            if os.path.exists(os.path.join(g, f)) or \
                    gzip.decompress(read(os.path.join(g, f + ".gz"))) != read(os.path.join(a, f)):
                print(f"FAIL: --format gzip: {f}.gz is not {f} compressed")
                return 1
        p = run([hop, "--db", os.path.join(work, "gdb"), "ingest"] +
                [os.path.join(g, f + ".gz") for f in FILES])
        if p.returncode != 0:
            print(f"FAIL: ingest of the .gz files: exit {p.returncode}: {p.stderr.strip()[-500:]}")
            return 1
        p = run([sys.executable, os.path.join(CORPUS_TOOLS, "check_traces.py"), hop,
                 os.path.join(work, "gdb"), g, "--ids", "apigw", "--sample", "10"])
        print("gzip:", p.stdout.strip())
        if p.returncode != 0:
            print("FAIL: the .gz files do not ingest to the same answers")
            return 1
        if (k > 1) != os.path.exists(os.path.join(a, "truth-extra.json")):
            print("FAIL: truth-extra.json is written exactly when --stream-batch > 1")
            return 1
        p = run([sys.executable, os.path.join(CORPUS_TOOLS, "derive_truth.py"), a])
        print(p.stdout.strip())
        if p.returncode != 0:
            print(f"FAIL: truth disagrees with the documents\n{p.stderr[-2000:]}")
            return 1
        s = shape(a)
        print(", ".join(f"{v} {k_}" for k_, v in s.items()))
        need = ["cwl messages", "kinesis messages", "cold starts", "links",
                "streamed subsegments", "sqs batches > 1", "stalled"]
        if n >= 100:
            need.append("stale lines")
        missing = [x for x in need if s[x] == 0]
        if s["requests"] != n or missing:
            print(f"FAIL: corpus lacks {missing or 'requests'}")
            return 1
        db = os.path.join(work, "db")
        p = run([hop, "--db", db, "ingest"] + [os.path.join(a, f) for f in FILES])
        if p.returncode != 0:
            print(f"FAIL: ingest exit {p.returncode}: {p.stderr.strip()[-500:]}")
            return 1
        print("ingest:", p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "")
        top = os.path.abspath(os.path.join(HERE, "..", ".."))
        checker = os.path.join(top, "..", "shared", "tools", "check_traces.py")
        if not os.path.exists(checker):
            checker = os.path.join(CORPUS_TOOLS, "check_traces.py")
        rc = 0
        if full >= n:
            runs = [[]]
        else:
            runs = [["--ids", "apigw"], ["--sample", str(full)]]
        for extra in runs:
            p = run([sys.executable, checker, hop, db, a] + extra)
            print(" ".join(extra) or "all ids:", p.stdout.strip())
            rc |= p.returncode != 0
        if k > 1:
            p = run([sys.executable, os.path.join(CORPUS_TOOLS, "check_extra.py"), hop, db, a])
            print(p.stdout.strip())
            rc |= p.returncode != 0
        print(("PASS" if rc == 0 else "FAIL") + f": simulate N={n} seed={seed} stream-batch={k}")
        return 1 if rc else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
