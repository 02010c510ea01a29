#!/usr/bin/env python3
"""CI-sized run of the benchmark (bench/ht_bench.c): it runs end to end on a
small `hoptrace simulate` corpus and reports sane numbers.  No timing
assertions: the figures belong to the benchmark, not to the test.

usage: simulate_bench_smoke.py HT_BENCH HOPTRACE [N]

Checks: `ht-bench --help` works; `ht-bench --requests N --runs 1
--trace-ids 20 --json` exits 0 and prints one JSON object whose counts
(documents of each kind, spans, log events, store bytes, peak RSS) and
times are positive, whose document count matches what the corpus files
hold, with no parse, ingest or lookup failure, one round of floor +
ingest with its own figures, the ingest's peak RssAnon within its peak RSS,
criteria each PASS, FAIL or not measured; and the table form prints the
ratio line and the acceptance lines.  The scratch folder is removed.
"""
import json
import shutil
import subprocess
import sys
import tempfile


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench, hop = argv[1], argv[2]
    n = int(argv[3]) if len(argv) > 3 else 200
    p = subprocess.run([bench, "--help"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or "ratio" not in p.stdout:
        print(f"FAIL: ht-bench --help: exit {p.returncode}")
        return 1
    work = tempfile.mkdtemp(prefix="ht-bench-smoke-")
    try:
        p = subprocess.run([bench, "--hoptrace", hop, "--requests", str(n), "--runs", "1",
                            "--trace-ids", "20", "--work", work, "--keep", "--json"],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            print(f"FAIL: ht-bench exit {p.returncode}: {p.stderr.strip()[-800:]}")
            return 1
        r = json.loads(p.stdout)
        print(json.dumps(r, indent=1))
        errs = []
        positive = [("documents", k) for k in ("total", "xray", "log_messages", "log_event_json", "bytes")]
        positive += [("floor", k) for k in ("seconds", "docs_per_s", "mb_per_s", "top_level_seconds")]
        positive += [("ingest", k) for k in ("seconds_best", "seconds_median", "docs_per_s", "mb_per_s",
                                             "peak_rss_kib", "peak_rss_anon_kib", "cpu_seconds_best",
                                             "spans", "log_events", "documents_reported")]
        positive += [("store", k) for k in ("allocated_bytes", "bytes_per_request", "bytes_per_span")]
        # the anchors: simdjson over the same documents, LMDB appending the store's pairs
        positive += [("anchors", k) for k in ("simdjson_seconds", "jansson_over_simdjson",
                                              "ingest_over_simdjson", "lmdb_pairs", "lmdb_pair_bytes",
                                              "lmdb_append_seconds", "ingest_over_lmdb_append")]
        positive += [("query", k) for k in ("process_runs", "process_p50_ms", "process_p99_ms",
                                            "inproc_runs", "inproc_p50_ms", "inproc_p99_ms")]
        for sec, k in positive:
            v = r.get(sec, {}).get(k)
            if not isinstance(v, (int, float)) or not v > 0:
                errs.append(f"{sec}.{k} = {v!r}, expected > 0")
        for k in ("ratio", "ratio_cpu"):
            if not (isinstance(r.get(k), (int, float)) and r[k] > 0):
                errs.append(f"{k} = {r.get(k)!r}")
        # floor and ingest alternate: one round each per run, each with its own figures
        rounds = r.get("rounds", [])
        if len(rounds) != 1 or not all(isinstance(x.get(k), (int, float)) and x[k] > 0 for x in rounds
                                       for k in ("floor_s", "floor_cpu_s", "simdjson_s", "ingest_s",
                                                 "ingest_cpu_s",
                                                 "peak_rss_anon_kib")):
            errs.append(f"rounds: {rounds!r}")
        # the process's own memory: its anonymous pages are part of its RSS
        if r["ingest"]["peak_rss_anon_kib"] > r["ingest"]["peak_rss_kib"]:
            errs.append("peak RssAnon above the process's peak RSS")
        crit = r.get("criteria", [])
        if len(crit) < 3 or not all(isinstance(c.get("criterion"), str) and
                                    (c.get("pass") is None or isinstance(c["pass"], bool)) for c in crit):
            errs.append(f"criteria: {crit!r}")
        if r["corpus"]["requests"] != n:
            errs.append(f"{r['corpus']['requests']} requests, expected {n}")
        for sec, k in (("documents", "parse_failures"), ("query", "process_failures"),
                       ("query", "inproc_failures")):
            if r[sec][k] != 0:
                errs.append(f"{sec}.{k} = {r[sec][k]}")
        if r["query"]["inproc_runs"] != n:
            errs.append(f"in-process queries {r['query']['inproc_runs']}, expected {n}")
        d = r["documents"]
        if d["total"] != d["xray"] + d["log_messages"] + d["log_event_json"]:
            errs.append("documents.total is not the sum of its kinds")
        if r["query"]["process_p50_ms"] > r["query"]["process_p99_ms"] or \
                r["query"]["inproc_p50_ms"] > r["query"]["inproc_p99_ms"]:
            errs.append("p50 above p99")
        # the X-Ray documents are exactly the non-header lines of segments.ndjson
        lines = [l for l in open(f"{work}/corpus/segments.ndjson") if l.strip()]
        docs = [l for l in lines if l.strip() != '{"format":"json","version":1}']
        if d["xray"] != len(docs) or len(lines) != 2 * len(docs):
            errs.append(f"xray documents {d['xray']}, the file holds {len(docs)}")
        # the table form, on the kept corpus
        p = subprocess.run([bench, "--hoptrace", hop, "--corpus", f"{work}/corpus", "--runs", "1",
                            "--trace-ids", "5", "--work", f"{work}/t"],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0 or "floor / ingest" not in p.stdout or "acceptance" not in p.stdout:
            errs.append(f"table form: exit {p.returncode}, {p.stdout[-300:]} {p.stderr[-300:]}")
        for e in errs:
            print("FAIL:", e)
        if not errs:
            print(f"PASS: ht-bench smoke, {n} requests")
        return 1 if errs else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
