#!/usr/bin/env python3
"""`hoptrace simulate` at any size and in consecutive windows.

usage: simulate_pages.py HOPTRACE [BIG_N]

1. Pages: `simulate --requests BIG_N` (default 30000; one GetRecords file of
   that corpus used to exceed ingest's 16 MiB value cap) writes
   logs-kinesis.json as consecutive GetRecords responses, each at most
   10,000,000 bytes and 10,000 records, each with Records, a distinct
   NextShardIterator and MillisBehindLatest (0 on the last page), more than
   one page, as many records as the summary line says; `ingest --strict` of
   that file rejects nothing.  The rest of that corpus is not ingested (it
   takes long on a 2-core machine); 2. does a whole corpus.
2. `--page-records 7` on a small corpus: every page holds at most 7
   records, and the three files ingest (--strict) to answers exact against
   truth.json (check_traces.py: every API Gateway id, a sample by every id).
3. Windows: `--start` (RFC 3339 and epoch seconds) is when the first
   request begins (truth's first start_us); the same seed and start give
   the same bytes; four windows (two seeds x two starts a day apart, so
   each pair shares a seed or a start) share no id of any kind (truth's
   ids, X-Ray segment ids, log event ids, Kinesis record sequence numbers);
   all four ingested into one store, each window's requests are exact.
4. `--start` that is not a time is a usage error (exit 2).
Temporary folders are removed.  Exit 0 only if every step passes.
"""
import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_TOOLS = os.path.join(HERE, "..", "corpus")
FILES = ["segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json"]
PAGE_BYTES, PAGE_RECORDS = 10_000_000, 10_000
DAY = 86400


def run(cmd, timeout=600):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def simulate(hop, out, n, seed, *extra):
    p = run([hop, "simulate", "--requests", str(n), "--seed", str(seed), "--out", out, *extra])
    if p.returncode != 0:
        raise SystemExit(f"FAIL: simulate {extra} exit {p.returncode}: {p.stderr.strip()}")
    return p.stderr.strip()


def pages(path):
    """Every GetRecords response of the file: (object, its bytes)."""
    text = open(path, encoding="utf-8").read()
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return out
        obj, j = dec.raw_decode(text, i)
        out.append((obj, len(text[i:j].encode())))
        i = j


def check_pages(ps, max_records, errs, where):
    iters = set()
    for k, (o, nbytes) in enumerate(ps):
        if not isinstance(o.get("Records"), list):
            errs.append(f"{where}: page {k} has no Records")
            continue
        if nbytes > PAGE_BYTES:
            errs.append(f"{where}: page {k} is {nbytes} bytes (> {PAGE_BYTES})")
        if len(o["Records"]) > max_records:
            errs.append(f"{where}: page {k} has {len(o['Records'])} records (> {max_records})")
        it, mbl = o.get("NextShardIterator"), o.get("MillisBehindLatest")
        if not isinstance(it, str) or not it or it in iters:
            errs.append(f"{where}: page {k}: NextShardIterator {it!r} missing or repeated")
        iters.add(it)
        if not isinstance(mbl, int) or mbl < 0:
            errs.append(f"{where}: page {k}: MillisBehindLatest {mbl!r}")
    if ps and ps[-1][0].get("MillisBehindLatest") != 0:
        errs.append(f"{where}: the last page is behind the tip")


def summary_count(line, what):
    m = re.search(r"(\d+) " + what, line)
    return int(m.group(1)) if m else -1


def checker():
    top = os.path.abspath(os.path.join(HERE, "..", ".."))
    c = os.path.join(top, "..", "shared", "tools", "check_traces.py")
    return c if os.path.exists(c) else os.path.join(CORPUS_TOOLS, "check_traces.py")


def check_traces(hop, db, corpus, extra, errs, where):
    p = run([sys.executable, checker(), hop, db, corpus] + extra)
    print(f"{where} {' '.join(extra)}: {p.stdout.strip()}")
    if p.returncode != 0:
        errs.append(f"{where}: not exact ({' '.join(extra)})")


def ingest(hop, db, paths, errs, where):
    p = run([hop, "--db", db, "ingest", "--strict"] + paths)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    print(f"{where} ingest: {last}")
    if p.returncode != 0 or "rejected 0" not in last:
        errs.append(f"{where}: ingest exit {p.returncode}: {last}")


def window_ids(d):
    """Every id a window's files and truth hold, as (kind, id)."""
    ids = set()
    for t in json.load(open(os.path.join(d, "truth.json")))["requests"]:
        for k in ("apigw_request_id", "create_request_id", "process_request_id",
                  "index_request_id", "notify_request_id", "message_id",
                  "ddb_sequence", "kinesis_sequence"):
            if k in t:
                ids.add(("truth", t[k]))
        ids.update(("truth", x) for x in t["trace_ids"])
    for line in open(os.path.join(d, "segments.ndjson")):
        doc = json.loads(line)
        if "id" in doc:
            ids.add(("segment", doc["id"]))
    msgs = [json.loads(l) for l in open(os.path.join(d, "logs-cwl.ndjson")) if l.strip()]
    for o, _ in pages(os.path.join(d, "logs-kinesis.json")):
        for r in o["Records"]:
            ids.add(("kinesis record", r["SequenceNumber"]))
            msgs.append(json.loads(gzip.decompress(base64.b64decode(r["Data"]))))
    for m in msgs:
        ids.add(("log stream", m["logStream"]))
        ids.update(("log event", e["id"]) for e in m["logEvents"])
    return ids


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    hop = os.path.abspath(argv[1])
    big = int(argv[2]) if len(argv) > 2 else 30000
    work = tempfile.mkdtemp(prefix="ht-simpages-")
    errs = []
    try:
        # 1. a corpus whose Kinesis file no longer fits one value
        b = os.path.join(work, "big")
        line = simulate(hop, b, big, 3)
        print(line)
        ps = pages(os.path.join(b, "logs-kinesis.json"))
        check_pages(ps, PAGE_RECORDS, errs, f"{big} requests")
        nrec = sum(len(o["Records"]) for o, _ in ps)
        if nrec != summary_count(line, "Kinesis records") or len(ps) != summary_count(line, "GetRecords pages"):
            errs.append(f"{len(ps)} pages / {nrec} records, the summary says otherwise: {line}")
        if big >= 30000 and len(ps) < 2:
            errs.append(f"{big} requests in {len(ps)} page")
        print(f"{big} requests: {len(ps)} pages, {nrec} records, largest page "
              f"{max(n for _, n in ps)} bytes")
        ingest(hop, os.path.join(work, "bigdb"), [os.path.join(b, "logs-kinesis.json")], errs,
               f"{big} requests, logs-kinesis.json")
        shutil.rmtree(b, ignore_errors=True)
        shutil.rmtree(os.path.join(work, "bigdb"), ignore_errors=True)

        # 2. many small pages, the whole corpus exact
        s = os.path.join(work, "small")
        print(simulate(hop, s, 150, 11, "--page-records", "7"))
        ps = pages(os.path.join(s, "logs-kinesis.json"))
        check_pages(ps, 7, errs, "--page-records 7")
        if len(ps) < 3:
            errs.append(f"--page-records 7: only {len(ps)} pages")
        db = os.path.join(work, "smalldb")
        ingest(hop, db, [os.path.join(s, f) for f in FILES], errs, "--page-records 7")
        check_traces(hop, db, s, ["--ids", "apigw"], errs, "--page-records 7")
        check_traces(hop, db, s, ["--sample", "10"], errs, "--page-records 7")

        # 3. windows
        t0 = 1796083200  # 2026-12-01T00:00:00Z
        wins = {"A": (21, "2026-12-01T00:00:00Z", t0), "B": (22, str(t0 + DAY), t0 + DAY),
                "C": (21, str(t0 + DAY), t0 + DAY), "D": (22, "2026-12-01T00:00:00Z", t0)}
        ids = {}
        for w, (seed, start, secs) in wins.items():
            d = os.path.join(work, w)
            print(simulate(hop, d, 120, seed, "--start", start))
            truth = json.load(open(os.path.join(d, "truth.json")))["requests"]
            first = min(t["start_us"] for t in truth)
            if first != secs * 1_000_000:
                errs.append(f"window {w}: first request at {first}, --start {start}")
            ids[w] = window_ids(d)
        d = os.path.join(work, "A2")
        simulate(hop, d, 120, 21, "--start", "2026-12-01T00:00:00Z")
        for f in FILES + ["truth.json"]:
            if open(os.path.join(d, f), "rb").read() != open(os.path.join(work, "A", f), "rb").read():
                errs.append(f"--start: {f} differs between two runs of one seed and start")
        names = sorted(wins)
        for i, x in enumerate(names):
            for y in names[i + 1:]:
                both = ids[x] & ids[y]
                if both:
                    errs.append(f"windows {x} and {y} share {len(both)} ids, e.g. {sorted(both)[:3]}")
        print("ids per window:", {w: len(v) for w, v in ids.items()})
        db = os.path.join(work, "windb")
        ingest(hop, db, [os.path.join(work, w, f) for w in names for f in FILES], errs, "4 windows")
        for w in names:
            check_traces(hop, db, os.path.join(work, w), ["--ids", "apigw"], errs, f"window {w}")
            check_traces(hop, db, os.path.join(work, w), ["--sample", "4"], errs, f"window {w}")

        # 4. usage
        for bad in ("yesterday", "-5", "2026-13-45T00:00:00Z"):
            p = run([hop, "simulate", "--requests", "5", "--out", os.path.join(work, "x"), "--start", bad])
            if p.returncode != 2:
                errs.append(f"--start {bad}: exit {p.returncode}, expected 2")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for e in errs:
        print("FAIL:", e)
    if not errs:
        print("PASS: simulate pages and windows")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
