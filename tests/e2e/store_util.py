"""What the e2e tests of one store's writers share: running hoptrace with
its output captured, failing with a message, and the corpus files
`hoptrace simulate` writes, in the order ingest takes them."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "..", "corpus", "check_traces.py")
FILES = ["segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json"]


def run(cmd, **kw):
    """cmd with stdout and stderr captured as text, at most 10 minutes."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def fail(msg):
    """Prints FAIL: msg and exits 1."""
    print(f"FAIL: {msg}")
    sys.exit(1)


def _pairs(db, name):
    """(key, value) hex lines of one LMDB database, as mdb_dump prints
    them; None when the store has no such database."""
    p = subprocess.run(["mdb_dump", "-s", name, db], capture_output=True,
                       text=True)
    if p.returncode != 0:
        return None
    body = p.stdout.split("HEADER=END\n", 1)[1]
    lines = [ln for ln in body.split("\n") if ln.startswith(" ")]
    return list(zip(lines[0::2], lines[1::2]))


EPOCH_LIST_KEY = " " + b"epochs".hex()
FILTER_KEY = " " + b"bf:".hex()  # a sealed epoch's Bloom filter
DOOMED_KEY = " " + b"doomed:".hex()  # an epoch whose tables are being dropped


def logical_tables(db, names=None):
    """{table: [(key, value)]} (mdb_dump's hex lines, in key order) as the
    store reads them: a table kept per epoch ("keys", "keys~3", ...) is
    merged, the newest epoch's value of a key winning (in keys, the
    dupsort table, every pair once), and meta loses its list of epochs
    and their filters (and the epochs being dropped).
    So two stores holding the same data compare equal however their
    writers cut it into epochs. names: only these tables."""
    p = subprocess.run(["mdb_dump", "-l", db], capture_output=True,
                       text=True, check=True)
    groups = {}
    for n in p.stdout.split():
        base, _, ep = n.partition("~")
        if names is None or base in names:
            groups.setdefault(base, []).append((int(ep) if ep else 0, n))
    out = {}
    for base, eps in groups.items():
        merged = {}
        for _, n in sorted(eps):
            for k, v in _pairs(db, n) or []:
                if base == "keys":
                    merged[(k, v)] = None
                else:
                    merged[k] = v
        if base == "meta":
            merged.pop(EPOCH_LIST_KEY, None)
            for k in [k for k in merged
                      if k.startswith(FILTER_KEY) or k.startswith(DOOMED_KEY)]:
                del merged[k]
        if base == "keys":
            out[base] = sorted(merged)
        else:
            out[base] = sorted(merged.items())
    return out


def logical_dump(db, names=None):
    """logical_tables as mdb_dump's body text per table (key line, value
    line, ..., DATA=END)."""
    return {n: "".join(f"{k}\n{v}\n" for k, v in pairs) + "DATA=END\n"
            for n, pairs in logical_tables(db, names).items()}
