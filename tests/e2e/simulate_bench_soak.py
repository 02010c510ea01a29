#!/usr/bin/env python3
"""CI-sized soak of the benchmark (`ht-bench --soak`): two tiny chunks, one
day apart, ingested into one store.  No timing assertions.

usage: simulate_bench_soak.py HT_BENCH HOPTRACE [CHUNK_REQUESTS]

Checks: `ht-bench --soak 2 --chunk-requests N --retain 12h --check-ids 4
--json` exits 0 with one JSON object: two chunks one day apart (seeds S and
S + 1), each with positive ingest time, CPU time, documents, docs/s, peak
RssAnon (within its peak RSS) and data.mdb bytes; the seven criteria of
issue 11, each PASS, FAIL or not measured (the size criterion needs three
chunks: not measured); the last chunk's sampled requests exact against its
truth (whatever the store layout, that must hold); when this hoptrace's
ingest has --retain, the first chunk's sampled requests gone (12 h of
retention, chunks a day apart); `endpoints` ran.  Then `--soak 1` in table
form prints the chunk line and the acceptance lines.  Scratch removed.
"""
import json
import shutil
import subprocess
import sys
import tempfile

CRITERIA = 7


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    bench, hop = argv[1], argv[2]
    n = int(argv[3]) if len(argv) > 3 else 80
    work = tempfile.mkdtemp(prefix="ht-bench-soak-")
    errs = []
    try:
        p = subprocess.run([bench, "--hoptrace", hop, "--soak", "2", "--chunk-requests", str(n),
                            "--retain", "12h", "--check-ids", "4", "--seed", "5",
                            "--work", f"{work}/a", "--json"],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            print(f"FAIL: ht-bench --soak exit {p.returncode}: {p.stderr.strip()[-800:]}")
            return 1
        r = json.loads(p.stdout)
        print(json.dumps(r, indent=1))
        print(p.stderr.strip())
        chunks = r.get("chunks", [])
        if len(chunks) != 2:
            errs.append(f"{len(chunks)} chunks, expected 2")
        for c in chunks:
            for k in ("ingest_s", "cpu_s", "documents", "docs_per_s", "peak_rss_anon_kib",
                      "peak_rss_kib", "store_allocated_bytes"):
                if not (isinstance(c.get(k), (int, float)) and c[k] > 0):
                    errs.append(f"chunk {c.get('chunk')}: {k} = {c.get(k)!r}")
            if not (isinstance(c.get("retention_s"), (int, float)) and 0 <= c["retention_s"] <= c["cpu_s"]):
                errs.append(f"chunk {c.get('chunk')}: retention_s = {c.get('retention_s')!r}")
            # every chunk's ingest wrote its requests' summaries and said how long that took
            if not (c.get("summaries_reported") is True and
                    isinstance(c.get("summaries_s"), (int, float)) and 0 < c["summaries_s"] <= c["ingest_s"]):
                errs.append(f"chunk {c.get('chunk')}: summaries_s = {c.get('summaries_s')!r}, "
                            f"reported {c.get('summaries_reported')!r}")
            if c.get("peak_rss_anon_kib", 0) > c.get("peak_rss_kib", 0):
                errs.append(f"chunk {c.get('chunk')}: RssAnon above the peak RSS")
        if len(chunks) == 2:
            if [c["seed"] for c in chunks] != [5, 6]:
                errs.append(f"seeds {[c['seed'] for c in chunks]}")
            if (chunks[0]["start"], chunks[1]["start"]) != ("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"):
                errs.append(f"starts {chunks[0]['start']} {chunks[1]['start']}")
        crit = r.get("criteria", [])
        if len(crit) != CRITERIA or not all(c.get("pass") is None or isinstance(c.get("pass"), bool)
                                            for c in crit):
            errs.append(f"criteria: {crit!r}")
        size = [c for c in crit if "third" in c.get("criterion", "")]
        if len(size) != 1 or size[0]["pass"] is not None:
            errs.append(f"the size criterion with 2 chunks: {size!r}")
        last = r.get("last_chunk", {})
        if not (last.get("checked", 0) > 0 and last.get("exact") == last.get("checked")):
            errs.append(f"the last chunk is not exact: {last!r}")
        first = r.get("first_chunk", {})
        if r["soak"].get("retain_supported"):
            if not (first.get("checked", 0) > 0 and first.get("gone") == first.get("checked")):
                errs.append(f"--retain 12h: the first chunk is still there: {first!r}")
            # the second chunk's ingest removed the first: its summary said so, with a time
            if len(chunks) == 2 and chunks[1].get("retention_reported") is not True:
                errs.append(f"chunk 2 removed chunk 1, its summary line does not say so: {chunks[1]!r}")
        else:
            print("note: this hoptrace's ingest has no --retain; retention not checked")
        ep = r.get("endpoints", {})
        if ep.get("exit") != 0 or not ep.get("json"):
            errs.append(f"endpoints: {ep!r}")
        p = subprocess.run([bench, "--hoptrace", hop, "--soak", "1", "--chunk-requests", str(n),
                            "--check-ids", "2", "--work", f"{work}/b"],
                           capture_output=True, text=True, timeout=600)
        print(p.stdout)
        if p.returncode != 0 or "2026-12-01T00:00:00Z" not in p.stdout or \
                "acceptance" not in p.stdout or "N/A" not in p.stdout:
            errs.append(f"table form: exit {p.returncode}, {p.stdout[-300:]} {p.stderr[-300:]}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for e in errs:
        print("FAIL:", e)
    if not errs:
        print(f"PASS: ht-bench soak smoke, 2 chunks of {n} requests")
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
