#!/usr/bin/env python3
"""Retention of the stall-detection state end to end.

usage: prune_stages.py HOPTRACE [N]

1. `simulate` four windows of N requests, three days apart (each with its
   stalled DynamoDB Streams consumer), and a reference store per window
   that holds that window only.
2. The windows ingested one after another into one store with
   `--retain 1d`. After each, `stalls --format json` (as of a day after the
   window's start) lists only that window's waiting items: per stage the
   pending count, the oldest item, the stuck items, the status and the last
   consumption are the reference store's; the stage totals (entered,
   consumed) are the sums over every window so far (kept), except for the
   Kinesis writes that name no stream, which `stalls` counts from the
   writes themselves (so the window's own). The stall state (the tables
   stages and hops, hops' epochs merged) stops growing: after windows 3
   and 4 it holds at most 1.25x its entries after window 2, and about what
   the reference store of the last window holds.
3. Windows 1 and 2 ingested without --retain, then `prune --keep 1d`: its
   JSON counts the stall state removed, `stalls` agrees with the reference
   store of window 2 as above, and the stall state holds about what the
   --retain store held after window 2.
4. Replays: copies of the pruned windows ingested again (with --retain
   into the first store, without into the pruned one) leave `stalls` and
   the number of stage entries exactly as they were (they counted twice
   before retention kept a watermark).
Needs mdb_stat and mdb_dump (lmdb-utils); skipped (exit 77) without them. Temporary
folders are removed. Exit 0 only if every step passes.
"""
import json
import os
import shutil
import sys
import tempfile

from store_util import FILES, fail, logical_tables, run

DAY = 86400
START = 1795305600  # 2026-11-22T00:00:00Z
WINDOWS = 4




def ingest(hop, db, d, *opts):
    p = run([hop, "--db", db, "ingest", *opts, *(os.path.join(d, f) for f in FILES)])
    if p.returncode != 0:
        fail(f"ingest {d}: exit {p.returncode}: {p.stderr.strip()[-300:]}")


def entries(db):
    """Entries of the stall state as the store reads it: the per-stage
    table and the per-hop one, its epochs merged."""
    tables = logical_tables(db, ["stages", "hops"])
    return sum(len(tables.get(n, [])) for n in ("stages", "hops"))


def stalls(hop, db, now):
    p = run([hop, "--db", db, "stalls", "--format", "json", "--now", str(now),
             "--max-stuck", "1000"])
    if p.returncode not in (0, 4):
        fail(f"stalls: exit {p.returncode}: {p.stderr.strip()}")
    return {g["stage"]: g for g in json.loads(p.stdout)["stages"]}


WINDOW_FIELDS = ("pending", "overdue", "oldest_pending_us", "status",
                 "last_consumed_us")


def agrees(name, got, ref, refs_so_far, start_us):
    """got: stalls of the retained store; ref: of the window's reference
    store; refs_so_far: of every window's reference store so far."""
    for stage, r in ref.items():
        g = got.get(stage)
        if g is None:
            fail(f"{name}: stage {stage} missing")
        for f in WINDOW_FIELDS:
            if g[f] != r[f]:
                fail(f"{name}: {stage}: {f} {g[f]} != {r[f]} (the window's own)")
        if sorted(s["span"] for s in g["stuck"]) != sorted(s["span"] for s in r["stuck"]):
            fail(f"{name}: {stage}: stuck items differ from the window's own")
        for f in ("entered", "consumed"):
            total = sum(x[stage][f] for x in refs_so_far if stage in x)
            if g["via"] == "kinesis":
                # simulate's Kinesis writes name no stream: `stalls` counts
                # them from the writes still kept (stages.h, 'P' "kput:")
                total = r[f]
            if g[f] != total:
                fail(f"{name}: {stage}: {f} {g[f]} != {total} (every window's)")
    for stage, g in got.items():
        if stage not in ref and (g["pending"] or g["stuck"]):
            fail(f"{name}: {stage} lists items of an earlier window: {g['pending']}")
        old = [s for s in g["stuck"] if s["produced_us"] < start_us]
        if old:
            fail(f"{name}: {stage} lists {len(old)} items of an earlier window")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if not shutil.which("mdb_stat"):
        print("SKIP: mdb_stat (lmdb-utils) is not installed")
        return 77
    hop = argv[1]
    n = int(argv[2]) if len(argv) > 2 else 300
    tmp = tempfile.mkdtemp(prefix="ht_pstg_")
    try:
        win, refs, ref_entries = [], [], []
        for i in range(WINDOWS):
            d = os.path.join(tmp, f"w{i}")
            start = START + 3 * DAY * i
            p = run([hop, "simulate", "--requests", str(n), "--seed", str(30 + i),
                     "--start", str(start), "--out", d])
            if p.returncode != 0:
                fail(f"simulate: {p.stderr.strip()}")
            win.append((d, start))
            ref = os.path.join(tmp, f"ref{i}")
            ingest(hop, ref, d)
            refs.append(stalls(hop, ref, start + DAY))
            ref_entries.append(entries(ref))
            if not any(g["pending"] for g in refs[-1].values()):
                fail(f"window {i}: nothing waits in the reference store")

        # 2. one store under --retain 1d
        db = os.path.join(tmp, "db")
        counts = []
        for i, (d, start) in enumerate(win):
            ingest(hop, db, d, "--retain", "1d")
            agrees(f"--retain, window {i}", stalls(hop, db, start + DAY), refs[i],
                   refs[:i + 1], start * 1_000_000)
            counts.append(entries(db))
        for i in (2, 3):
            if counts[i] > 1.25 * counts[1]:
                fail(f"the stall state grows: {counts} entries after each window")
            if counts[i] > 1.1 * ref_entries[i] + 64:
                fail(f"window {i}: {counts[i]} stage entries, the window alone "
                     f"{ref_entries[i]}")
        print(f"ok: --retain 1d: stage entries after each window {counts} "
              f"(each window alone {ref_entries}); stalls lists the last window's "
              "items only, totals over every window")

        # 3. `prune --keep 1d` on a store that kept everything
        db2 = os.path.join(tmp, "db2")
        ingest(hop, db2, win[0][0])
        ingest(hop, db2, win[1][0])
        full = entries(db2)
        p = run([hop, "--db", db2, "prune", "--keep", "1d", "--format", "json"])
        if p.returncode != 0:
            fail(f"prune: exit {p.returncode}: {p.stderr.strip()}")
        res = json.loads(p.stdout)
        sr = res.get("stages_removed", {})
        waiting0 = sum(g["pending"] for g in refs[0].values())
        if sr.get("hops", 0) <= 0 or sr.get("pending", 0) < waiting0 or \
                sr.get("buckets", 0) <= 0:
            fail(f"prune: stall state removed {sr}, {waiting0} items were waiting")
        agrees("prune --keep 1d", stalls(hop, db2, win[1][1] + DAY), refs[1], refs[:2],
               win[1][1] * 1_000_000)
        left = entries(db2)
        if not (left < full and abs(left - counts[1]) <= 0.05 * counts[1] + 64):
            fail(f"prune: {full} stage entries before, {left} after; "
                 f"--retain kept {counts[1]}")
        print(f"ok: prune --keep 1d removed {sr}; stage entries {full} -> {left}")

        # 4. a replay of pruned windows (copies: a file already ingested is
        # skipped by its checkpoint) changes no stall figure and adds no
        # stall state, under --retain and after prune
        for name, store, now, last in (("--retain", db, win[-1][1] + DAY, 3),
                                       ("prune", db2, win[1][1] + DAY, 1)):
            before, n0 = stalls(hop, store, now), entries(store)
            for i in range(last):
                copy = os.path.join(tmp, f"replay-{name}-{i}")
                shutil.copytree(win[i][0], copy)
                ingest(hop, store, copy, *(("--retain", "1d")
                                           if name == "--retain" else ()))
            after, n1 = stalls(hop, store, now), entries(store)
            if after != before:
                diff = [k for k in set(before) | set(after)
                        if before.get(k) != after.get(k)]
                fail(f"replay after {name}: stalls changed for {diff}")
            if n1 != n0:
                fail(f"replay after {name}: {n0} stage entries before, {n1} "
                     "after")
        print("ok: replays of pruned windows leave stalls and the stall state "
              "as they were")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
