#!/usr/bin/env python3
"""Hold hoptrace against a corpus's truth-extra.json (batched stream consumers).

usage: check_extra.py HOPTRACE DB CORPUS_DIR

For every request listed, each lookup id (record-ledger / send-receipt Lambda
request id and trace id, DynamoDB / Kinesis sequence number) must resolve via
`hoptrace trace ID --format json` to exactly `want` requests, one of which is
the request itself (the root its API Gateway request id resolves to).
Prints at most 8 failing requests, then 'N/M requests exact'.
"""
import json
import sys

# the same lookup as the truth checker beside this file
from check_traces import lookup


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    hoptrace, db, corpus = argv[1:4]
    reqs = json.load(open(f"{corpus}/truth-extra.json"))["requests"]
    failing = []
    for x in reqs:
        errs = []
        rs, err = lookup(hoptrace, db, x["apigw_request_id"])
        root = rs[0].get("root") if rs and len(rs) == 1 else None
        if root is None:
            errs.append(f"API Gateway id: {err or f'{len(rs)} requests'}")
        for lk in x["lookups"]:
            rs, err = lookup(hoptrace, db, lk["id"])
            if rs is None:
                errs.append(f"{lk['what']} {lk['id']}: {err}")
                continue
            if len(rs) != lk["want"]:
                errs.append(f"{lk['what']} {lk['id']}: {len(rs)} requests, expected {lk['want']}")
            if root is not None and root not in {r.get("root") for r in rs}:
                errs.append(f"{lk['what']} {lk['id']}: not found in its request")
        if errs:
            failing.append((x["i"], errs))
    for i, errs in failing[:8]:
        print(f"request {i}: " + "; ".join(errs[:3]))
    print(f"{len(reqs) - len(failing)}/{len(reqs)} requests exact (truth-extra)")
    return 0 if not failing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
