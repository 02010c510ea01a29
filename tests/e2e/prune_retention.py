#!/usr/bin/env python3
"""Retention end to end: `hoptrace prune` against simulate's truth.

usage: prune_retention.py HOPTRACE [N]

1. `simulate --requests N` (two seeds: A and B, same time range, other ids)
   and A ingested one file per `ingest` run (segments, then the logs).
2. `prune --before C --horizon H`, with C the median end of A's requests
   and H just over its longest request: every request that ended before
   C - H is gone (its API Gateway id, entry trace id, first Lambda request
   id and SQS message id give `trace` exit 1); every request that started
   at or after C is exact by every id (check_traces.py on those requests).
   The JSON summary accounts for the removal; each slice is short.
3. `prune --keep 0s` (cut-off: the newest event) then `prune --before`
   a far date remove the rest: the store holds no spans, invocations,
   facts, keys or pending hops.
4. B (as many requests, other ids) ingested after the prune reuses the
   freed pages: data.mdb's allocated size stays within 1.25x its size after
   A, and B's requests are exact.
Temporary folders are removed. Exit 0 only if every step passes.
"""
import json
import os
import shutil
import sys
import tempfile

from store_util import CHECK, FILES, fail, run


def ingest(hop, db, d):
    # three windows: one run per file, one after another
    for f in FILES:
        p = run([hop, "--db", db, "ingest", os.path.join(d, f)])
        if p.returncode != 0:
            fail(f"ingest {f}: exit {p.returncode}: {p.stderr.strip()[-300:]}")


def stats(hop, db):
    p = run([hop, "--db", db, "stats", "--format", "json"])
    if p.returncode != 0:
        fail(f"stats: exit {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def allocated(db):
    return os.stat(os.path.join(db, "data.mdb")).st_blocks * 512


def prune(hop, db, *args):
    p = run([hop, "--db", db, "prune", *args, "--format", "json"])
    if p.returncode != 0:
        fail(f"prune {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return json.loads(p.stdout)


def check_exact(hop, db, truth, reqs, tmp, name, ids="all"):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    t = dict(truth)
    t["requests"] = reqs
    with open(os.path.join(d, "truth.json"), "w") as f:
        json.dump(t, f)
    p = run([sys.executable, CHECK, hop, db, d, "--ids", ids])
    last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    if p.returncode != 0:
        fail(f"{name}: not exact after prune:\n{p.stdout[-2000:]}{p.stderr[-500:]}")
    return last


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    hop = argv[1]
    n = int(argv[2]) if len(argv) > 2 else 400
    tmp = tempfile.mkdtemp(prefix="ht_prune_")
    try:
        a, b, db = (os.path.join(tmp, x) for x in ("a", "b", "db"))
        for d, seed in ((a, 21), (b, 22)):
            p = run([hop, "simulate", "--requests", str(n), "--seed", str(seed),
                     "--out", d])
            if p.returncode != 0:
                fail(f"simulate: {p.stderr.strip()}")
        truth = json.load(open(os.path.join(a, "truth.json")))
        reqs = truth["requests"]
        ingest(hop, db, a)
        size_a = allocated(db)
        before = stats(hop, db)

        # 2. a cut-off in the middle, a horizon just over the longest request
        longest = max(r["end_us"] - r["start_us"] for r in reqs)
        horizon_s = longest // 1_000_000 + 1
        ends = sorted(r["end_us"] for r in reqs)
        cut = ends[len(ends) // 2]
        gone = [r for r in reqs if r["end_us"] < cut - horizon_s * 1_000_000]
        kept = [r for r in reqs if r["start_us"] >= cut]
        if len(gone) < 20 or len(kept) < 20:
            fail(f"corpus too short for the test: {len(gone)} gone, {len(kept)} kept "
                 f"(horizon {horizon_s}s)")
        res = prune(hop, db, "--before", f"{cut / 1e6:.6f}", "--horizon", f"{horizon_s}s")
        rm = res["removed"]
        if rm["spans"] <= 0 or rm["invocations"] <= 0 or rm["keys"] <= 0:
            fail(f"prune removed nothing: {res}")
        if res["cutoff_us"] != cut or res["horizon_us"] != horizon_s * 1_000_000:
            fail(f"prune summary: {res}")
        if res["seconds"] / max(1, res["slices"]) > 0.5:
            fail(f"a prune slice held the writer {res['seconds'] / res['slices']:.2f} s")
        after = stats(hop, db)
        if after["spans"] != before["spans"] - rm["spans"] or \
                after["invocations"] != before["invocations"] - rm["invocations"] or \
                after["facts"] != before["facts"] - rm["facts"] or \
                after["keys"] != before["keys"] - rm["keys"]:
            fail(f"stats do not add up: before {before}, removed {rm}, after {after}")
        bad = []
        for r in gone:
            for ident in (r["apigw_request_id"], r["trace_ids"][0],
                          r["create_request_id"], r["message_id"]):
                p = run([hop, "--db", db, "trace", ident, "--format", "json"])
                if p.returncode != 1:
                    bad.append((r["i"], ident, p.returncode))
        if bad:
            fail(f"{len(bad)} ids of pruned requests still resolve, e.g. {bad[:5]}")
        summary = check_exact(hop, db, truth, kept, tmp, "kept")
        print(f"ok: prune removed {rm['spans']} spans, {rm['invocations']} invocations "
              f"in {res['slices']} slices; {len(gone)} requests gone, {summary} kept")

        # 3. the rest
        res = prune(hop, db, "--keep", "0s", "--horizon", "0s")
        if res["removed"]["spans"] <= 0 or res["cutoff_us"] != res["newest_event_us"]:
            fail(f"prune --keep 0s: {res}")
        # what ended at the newest event itself is not before it
        res = prune(hop, db, "--before", "2100-01-01T00:00:00Z", "--horizon", "0s")
        left = stats(hop, db)
        for k in ("spans", "invocations", "facts", "keys", "hops_pending"):
            if left[k] != 0:
                fail(f"after pruning everything the store still holds {left}")
        p = run([hop, "--db", db, "trace", kept[0]["apigw_request_id"]])
        if p.returncode != 1:
            fail(f"a pruned id still resolves after pruning everything (exit {p.returncode})")

        # 4. as much data again: the freed pages are reused
        ingest(hop, db, b)
        size_b = allocated(db)
        if size_b > 1.25 * size_a:
            fail(f"data.mdb grew from {size_a} to {size_b} bytes (> 1.25x) "
                 "after pruning everything and ingesting as much again")
        truth_b = json.load(open(os.path.join(b, "truth.json")))
        summary = check_exact(hop, db, truth_b, truth_b["requests"][:60], tmp, "b",
                              ids="apigw")
        print(f"ok: everything pruned; as much again ingested: {size_a} -> {size_b} "
              f"bytes allocated; B {summary}")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
