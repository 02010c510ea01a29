#!/usr/bin/env python3
"""Function names for plain Lambda logs that name no log group (issue 12,
item 8), against tests/functions/: `aws logs filter-log-events` output
carries no logGroupName, so a START/REPORT pair is named by the X-Ray
AWS::Lambda segment of the same request id, or by `ingest --log-group`.

usage: function_names.py HOPTRACE
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "functions")


def main():
    hop = sys.argv[1]
    exp = json.load(open(os.path.join(HERE, "expected.json")))["functions"]
    tmp = tempfile.mkdtemp(prefix="ht-fn-")
    fails = []
    try:
        db = os.path.join(tmp, "db")
        f = lambda n: os.path.join(HERE, n)
        subprocess.run([hop, "--db", db, "ingest", "--quiet", "--strict",
                        f("filter-log-events-plain.json"), f("segment.ndjson")], check=True)
        subprocess.run([hop, "--db", db, "ingest", "--quiet", "--strict",
                        "--log-group", "/aws/lambda/ledger-fn",
                        f("filter-log-events-group-given.json")], check=True)
        got = json.loads(subprocess.run([hop, "--db", db, "functions", "--format", "json"],
                                        check=True, capture_output=True, text=True).stdout)
        names = [g["name"] for g in got["functions"]]
        if sorted(names) != sorted(e["name"] for e in exp):
            fails.append("functions %r, expected %r" % (names, [e["name"] for e in exp]))
        for e in exp:
            g = next((x for x in got["functions"] if x["name"] == e["name"]), None)
            if g is None:
                continue
            for k in ("invocations", "billed_ms", "memory_mb"):
                if g[k] != e[k]:
                    fails.append("%s %s: %r, expected %r" % (e["name"], k, g[k], e[k]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for x in fails:
        print("FAIL:", x)
    print("PASS" if not fails else "%d failures" % len(fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
