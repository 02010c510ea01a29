#!/usr/bin/env python3
"""Smoke test of ht-lmdb-floor (bench/README.md, "The delete floor") at a
small size: exit 0; a line per layout with a time; with --lookups, every
lookup layout finds exactly the ids that are there (half of them: a Bloom
filter may let a lookup search a day in vain, never skip the day that
holds the id); with --creep, a line per day whose parts add up to the
file and whose kept tables stay the size of the kept days (the expired
day is dropped); bad arguments exit 2. No timing assertions.
Usage: lmdb_floor_smoke.py HT_LMDB_FLOOR
"""
import re
import subprocess
import sys


def main():
    tool = sys.argv[1]
    errs = []
    n = 4000
    p = subprocess.run([tool, "--entries", str(n), "--days", "3", "--slice", "1500",
                        "--lookups", str(n)], capture_output=True, text=True, timeout=300)
    print(p.stdout, p.stderr)
    if p.returncode != 0:
        errs.append(f"exit {p.returncode}")
    for layout in ("random", "range", "drop"):
        if not re.search(rf"^{layout}\s+[0-9.]+ s CPU\s+[0-9.]+ us per entry$", p.stdout, re.M):
            errs.append(f"no line for the {layout} layout")
    found = re.findall(r"^lookup .*\((\d+) of (\d+) found", p.stdout, re.M)
    if len(found) != 3:
        errs.append(f"{len(found)} lookup lines, expected 3")
    for f, total in found:
        if int(total) != n or int(f) != n // 2:
            errs.append(f"a lookup layout found {f} of {total}, expected {n // 2}")
    days, kept = 8, 2
    p = subprocess.run([tool, "--creep", str(days), "--entries", str(n), "--days", str(kept),
                        "--batch", "1000"], capture_output=True, text=True, timeout=300)
    print(p.stdout, p.stderr)
    if p.returncode != 0:
        errs.append(f"--creep: exit {p.returncode}")
    rows = [tuple(map(int, r)) for r in
            re.findall(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", p.stdout, re.M)]
    if [r[0] for r in rows] != list(range(days)):
        errs.append(f"--creep: day lines {[r[0] for r in rows]}, expected 0..{days - 1}")
    for day, file, live, free, _records, other in rows:
        if file != live + free + other:
            errs.append(f"--creep day {day}: file {file} != live {live} + free {free} + other {other}")
    if len(rows) == days:
        full = rows[kept - 1][2]  # the kept days' tables once they are all there
        for day, _file, live, *_ in rows[kept:]:
            if not full * 0.8 <= live <= full * 1.25:
                errs.append(f"--creep day {day}: kept tables {live} pages, {kept} days take {full}")
    if not re.search(r"^the file over days \d+-\d+: [-+][0-9.]+ pages a day", p.stdout, re.M):
        errs.append("--creep: no growth line")
    for bad in (["--layout", "nope"], ["--entries", "5"], ["--what"], ["--creep", "0"]):
        q = subprocess.run([tool] + bad, capture_output=True, text=True, timeout=60)
        if q.returncode != 2:
            errs.append(f"{bad}: exit {q.returncode}, expected 2")
    for e in errs:
        print("FAIL:", e)
    if errs:
        return 1
    print("PASS: ht-lmdb-floor runs every layout, every lookup layout finds exactly what is there,"
          " and --creep accounts for every page of the file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
