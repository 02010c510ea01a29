#!/usr/bin/env python3
"""Arrival order does not matter: every fixture, its documents shuffled.

usage: order_invariance.py HOPTRACE FIXTURES_DIR [--rounds N]

Part of the e2e tier (tests/e2e/). For each fixture folder with an
expected.json: a reference store gets its input files in one `ingest`,
as check_fixture.py does. Then, N rounds with their own seed: the
documents of every input (each line of an NDJSON file, a CloudWatch
Logs envelope cut into one envelope per log event; any other file whole:
a JSON array, a GetRecords page, a pretty-printed document, a gzip file)
are shuffled together, dealt over one to three `ingest` runs
of one to three files each, with a batch size of 1, 3, 17 or the
default, into a fresh store; in about three rounds of five the store starts a
new epoch every 1, 2 or 5 batches (HOPTRACE_EPOCH_EVERY), so reads merge
many epochs. Every id of every request of expected.json
must then answer `trace --format json` byte for byte as in the
reference, and `stats --format json` must count the same spans,
invocations, records, keys, pending hops and rejects.

A failure prints the fixture, the round's seed and what differed, so it
can be replayed: order_invariance.py HOPTRACE FIXTURES_DIR --only NAME
--seed S. Exit 0 when every round of every fixture agrees.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

TIMEOUT = 120
# counts of `stats --format json` that must not depend on arrival order
STATS = ("spans", "invocations", "facts", "keys", "hops_pending",
         "dead_letters", "rejected_total")


def run(cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                          env=env)


def ids_of(exp):
    out = []
    for r in exp.get("requests", []):
        for v in r.get("ids", {}).values():
            for i in v if isinstance(v, list) else [v]:
                if i and i not in out:
                    out.append(i)
    return out


def split_envelope(line):
    """A CloudWatch Logs envelope line as one envelope per log event, so
    that the lines of one invocation arrive in any order too; any other
    line as it is."""
    try:
        doc = json.loads(line)
    except ValueError:
        return [line]
    evs = doc.get("logEvents") if isinstance(doc, dict) else None
    if not isinstance(evs, list) or len(evs) < 2:
        return [line]
    out = []
    for ev in evs:
        one = dict(doc)
        one["logEvents"] = [ev]
        out.append(json.dumps(one).encode())
    return out


def units_of(inputs):
    """(kind, bytes): 'line' for an NDJSON line, 'file' for a file kept
    whole (its name's extension, for the record: the reader sniffs)."""
    units = []
    for path in inputs:
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".ndjson"):
            for ln in data.split(b"\n"):
                if ln.strip():
                    units += [("line", u) for u in split_envelope(ln)]
        else:
            units.append(("file", data))
    return units


def answers(hop, db, ids):
    got = {}
    for i in ids:
        p = run([hop, "--db", db, "trace", i, "--format", "json"])
        got[i] = (p.returncode, p.stdout)
    p = run([hop, "--db", db, "stats", "--format", "json"])
    try:
        st = json.loads(p.stdout)
        got["<stats>"] = {k: st.get(k) for k in STATS}
    except ValueError:
        got["<stats>"] = ("unreadable", p.stdout, p.stderr)
    return got


def one_round(hop, work, name, units, ids, ref, seed):
    rng = random.Random(seed)
    units = list(units)
    rng.shuffle(units)
    db = os.path.join(work, "r%d" % seed)
    runs = rng.randint(1, 3)
    batch = rng.choice([1, 3, 17, None])
    # the store's epochs (design.md "Store"): in some rounds a new one
    # every 1, 2 or 5 batches, so answers come merged from many of them
    every = rng.choice([None, None, 1, 2, 5])
    env = dict(os.environ)
    env.pop("HOPTRACE_EPOCH_EVERY", None)
    if every:
        env["HOPTRACE_EPOCH_EVERY"] = str(every)
    cuts = sorted(rng.sample(range(1, len(units)), min(runs - 1, len(units) - 1)))
    groups = [units[a:b] for a, b in zip([0] + cuts, cuts + [len(units)])]
    fails = []
    for g, group in enumerate(groups):
        files = []
        nfiles = rng.randint(1, 3)
        lines = [[] for _ in range(nfiles)]
        for kind, data in group:
            if kind == "file":
                path = os.path.join(work, "s%d-g%d-f%d" % (seed, g, len(files)))
                with open(path, "wb") as f:
                    f.write(data)
                files.append(path)
            else:
                lines[rng.randrange(nfiles)].append(data)
        for k, ls in enumerate(lines):
            if ls:
                path = os.path.join(work, "s%d-g%d-l%d.ndjson" % (seed, g, k))
                with open(path, "wb") as f:
                    f.write(b"\n".join(ls) + b"\n")
                files.append(path)
        rng.shuffle(files)
        cmd = [hop, "--db", db, "ingest", "-q"]
        if batch:
            cmd += ["--batch", str(batch)]
        p = run(cmd + files, env=env)
        if p.returncode not in (0, 3):
            fails.append("ingest %d of %d: exit %d: %s" % (g + 1, len(groups), p.returncode,
                                                           p.stderr.strip()[-300:]))
    got = answers(hop, db, ids)
    for k, want in ref.items():
        if got.get(k) != want:
            what = "stats" if k == "<stats>" else "trace %s" % k
            detail = (want, got.get(k)) if k == "<stats>" else \
                ("exit %s vs %s" % (want[0], got[k][0])) if want[0] != got[k][0] else \
                "different JSON"
            fails.append("%s: %s" % (what, detail))
    shutil.rmtree(db, ignore_errors=True)
    for f in fails[:5]:
        print("%s (seed %d, %d runs, batch %s, epoch every %s): %s"
          % (name, seed, len(groups), batch or "default", every or "-", f),
          flush=True)
    return not fails


def main():
    args = sys.argv[1:]
    if len(args) < 2 or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    hop, root = args[0], args[1]
    rounds, only, seed0 = 3, None, None
    rest = args[2:]
    while rest:
        a = rest.pop(0)
        if a == "--rounds":
            rounds = int(rest.pop(0))
        elif a == "--only":
            only = rest.pop(0)
        elif a == "--seed":
            seed0 = int(rest.pop(0))
    names = sorted(n for n in os.listdir(root)
                   if os.path.isfile(os.path.join(root, n, "expected.json")))
    if only:
        names = [n for n in names if n == only]
    bad = total = 0
    work = tempfile.mkdtemp(prefix="hoptrace-order-")
    try:
        for name in names:
            folder = os.path.join(root, name)
            with open(os.path.join(folder, "expected.json")) as f:
                exp = json.load(f)
            inputs = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                            if n != "expected.json" and os.path.isfile(os.path.join(folder, n)))
            ids = ids_of(exp)
            units = units_of(inputs)
            if not ids or len(units) < 2:
                continue
            ref_db = os.path.join(work, "ref")
            p = run([hop, "--db", ref_db, "ingest", "-q"] + inputs)
            if p.returncode not in (0, 3):
                print("%s: reference ingest: exit %d: %s" % (name, p.returncode, p.stderr), flush=True)
                bad += 1
                continue
            ref = answers(hop, ref_db, ids)
            shutil.rmtree(ref_db, ignore_errors=True)
            seeds = [seed0] if seed0 is not None else \
                [sum(map(ord, name)) * 1000 + r for r in range(rounds)]
            for s in seeds:
                total += 1
                if not one_round(hop, work, name, units, ids, ref, s):
                    bad += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%d/%d shuffled rounds agree with the reference" % (total - bad, total))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
