#!/usr/bin/env python3
"""Writes fuzz/corpus/logline/ seeds: log event messages taken from the
fixtures' CloudWatch Logs files, one per kind of line (the first 40 bytes
with digits and hex masked decide the kind), each with the target's
leading selector byte (fuzz_logline.c): 0 for a function's log group, 2
for an API Gateway access log group.

    fuzz/logline_seeds.py fixtures/*/logs*.ndjson
"""
import hashlib
import json
import os
import re
import sys


def shape(msg):
    return re.sub(r"[0-9a-f]", "x", msg[:40])


def main():
    dest = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "corpus", "logline")
    os.makedirs(dest, exist_ok=True)
    seen = set()
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(doc, dict):
                    continue
                group = str(doc.get("logGroup", ""))
                sel = b"\x00" if group.startswith("/aws/lambda/") else b"\x02"
                for ev in doc.get("logEvents", []):
                    msg = ev.get("message")
                    if not isinstance(msg, str) or shape(msg) in seen:
                        continue
                    seen.add(shape(msg))
                    data = sel + msg.encode()
                    name = hashlib.sha1(data).hexdigest()[:16]
                    with open(os.path.join(dest, name), "wb") as o:
                        o.write(data)
    print(f"{len(seen)} kinds of log line in {dest}")


if __name__ == "__main__":
    main()
