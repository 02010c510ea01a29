#!/usr/bin/env python3
"""Hold `hoptrace simulate` with every adversity of issue 12 to its truth.

usage: simulate_hard.py HOPTRACE N SEED [STREAM_BATCH]

1. `hoptrace simulate --requests N --seed SEED --stream-batch K
   --link-only 0.3 --skew 0.3 --redeliver 0.15 --stale-keys 0.3 --shuffle`
   twice: byte-identical output.
2. The truth is re-derived from the raw documents alone, independently of
   the generator (SQS consumers by the messageId of their logged event or
   by the X-Ray links of their segment, a failed attempt by its faulted
   function segment, a request's DynamoDB write by its annotation among
   the writes that did not fail, stream consumers by the correlation id in
   their records), and must agree with truth.json: duration, every hop
   (one per consumer attempt) with its wait, path, skew pairs, failed
   attempts and the spans that must stay off the path, pending writes,
   ids and batch sizes.
3. The corpus has what it promises: link-only batches, skewed consumers,
   redelivered messages (ApproximateReceiveCount 2, a throttled PutItem, a
   faulted segment), stale correlation ids on event lines, shuffled
   arrival, log streams split across both log files.
4. `hoptrace ingest`, then every request exact by every id: by its API
   Gateway request id tests/corpus/check_hard.py's checks (duration, every
   hop per attempt with its wait, the pending write, the critical path from
   the root, skew warnings naming each skewed pair, no failed attempt on
   the path); every other id it has (Lambda request ids, trace ids, message
   id, correlation id, stream sequence numbers, failed attempts, and with
   K > 1 truth-extra.json's) names it, and exactly as many requests as it
   should. Each distinct id is looked up once, two lookups at a time.
Exit 0 only if every step passes. The temporary folder is removed.
"""
import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "corpus"))
from check_hard import check_request, lookup  # noqa: E402
from check_traces import other_ids  # noqa: E402
from derive_truth import flatten  # noqa: E402
from simulate_truth import getrecords_pages  # noqa: E402  (this folder)

FILES = ["segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json"]
ADV = ["--link-only", "0.3", "--skew", "0.3", "--redeliver", "0.15",
       "--stale-keys", "0.3", "--shuffle"]
TOL_MS = 0.001


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def us(x):
    return round(x * 1e6)


def load(d):
    lines = open(os.path.join(d, "segments.ndjson")).read().split("\n")
    docs = [json.loads(lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    cwl = [json.loads(x) for x in open(os.path.join(d, "logs-cwl.ndjson")) if x.strip()]
    kin = [json.loads(gzip.decompress(base64.b64decode(r["Data"])))
           for page in getrecords_pages(os.path.join(d, "logs-kinesis.json")) for r in page["Records"]]
    return docs, cwl, kin


def failed_call(d):
    return bool(d.get("error") or d.get("throttle") or d.get("fault"))


def derive(docs, msgs):
    """The truth of every request, from the documents alone (times as each
    host reports them)."""
    spans = [s for doc in docs for s in flatten(doc)]
    by_id = {s[0]["id"]: s for s in spans}
    lam, fn_of_lam, stage, kids = {}, {}, {}, {}
    for doc, tr, par in spans:
        o = doc.get("origin")
        if o == "AWS::Lambda":
            lam[doc["aws"]["request_id"]] = doc
        elif o == "AWS::Lambda::Function":
            fn_of_lam[par] = doc
        elif o == "AWS::ApiGateway::Stage":
            stage[doc["aws"]["api_gateway"]["request_id"]] = doc
        kids.setdefault(par, []).append(doc)
    lam_by_parent = {d_.get("parent_id"): d_ for d_ in lam.values() if d_.get("parent_id")}

    def under(fn_doc):
        """Every span under a function segment, nested or streamed."""
        out, todo = [], [fn_doc["id"]]
        while todo:
            for k in kids.get(todo.pop(), []):
                if by_id[k["id"]][1] == fn_doc["trace_id"]:
                    out.append(k)
                    todo.append(k["id"])
        return out

    def ops(fn_doc, op):
        return sorted((s for s in under(fn_doc) if s.get("aws", {}).get("operation") == op),
                      key=lambda s: s["end_time"])

    logged, corr_lines = {}, {}
    for m in msgs:
        fn = m["logGroup"].rsplit("/", 1)[-1]
        for e in m["logEvents"]:
            if not e["message"].startswith("{"):
                continue
            j = json.loads(e["message"])
            rid = j.get("function_request_id")
            if "event" in j and "Records" in j["event"]:
                logged[rid] = j["event"]["Records"]
            elif "correlation_id" in j and "orderId" in j:
                corr_lines.setdefault((fn, rid), []).append((e["timestamp"], j["correlation_id"], j["message"]))
    sqs_cons, ddb_cons, kin_cons = {}, {}, {}
    for rid, recs in logged.items():
        for r in recs:
            if r.get("eventSource") == "aws:sqs":
                sqs_cons.setdefault(r["messageId"], set()).add((rid, len(recs)))
            elif r.get("eventSource") == "aws:dynamodb":
                c = r["dynamodb"]["NewImage"]["correlation_id"]["S"]
                ddb_cons[c] = (rid, len(recs), r["dynamodb"]["SequenceNumber"])
            elif r.get("eventSource") == "aws:kinesis":
                c = json.loads(base64.b64decode(r["kinesis"]["data"]))["correlation_id"]
                kin_cons[c] = (rid, len(recs), r["kinesis"]["sequenceNumber"])
    linked = {}   # SendMessage span id -> {(consumer request id, batch size)}
    for rid, d_ in lam.items():
        for ln in d_.get("links", []):
            linked.setdefault(ln["id"], set()).add((rid, len(d_["links"])))

    out = {}
    for apigw, api in stage.items():
        sp = lam_by_parent[api["subsegments"][0]["id"]]
        send = ops(fn_of_lam[sp["id"]], "SendMessage")[0]
        mid = send["aws"]["message_id"]
        attempts = sqs_cons.get(mid, set()) | linked.get(send["id"], set())
        sizes = {n for _, n in attempts}
        assert len(sizes) == 1, (apigw, attempts)
        tries = sorted((lam[rid] for rid, _ in attempts), key=lambda x: x["start_time"])
        fails = [x for x in tries if fn_of_lam[x["id"]].get("fault")]
        ok = [x for x in tries if not fn_of_lam[x["id"]].get("fault")]
        assert len(ok) == 1, (apigw, len(ok))
        cc = ok[0]
        puts = [p for p in ops(fn_of_lam[cc["id"]], "PutItem")
                if p.get("annotations", {}).get("correlation_id") == apigw and not failed_call(p)]
        assert len(puts) == 1, (apigw, len(puts))
        pairs = [(send, x) for x in tries]
        nodes = [(api["start_time"], api["end_time"], api["name"]),
                 (sp["start_time"], sp["end_time"], "start-payment"),
                 (cc["start_time"], cc["end_time"], "charge-card")]
        t = {"correlation_id": apigw, "create_request_id": sp["aws"]["request_id"],
             "process_request_id": cc["aws"]["request_id"], "batch_size": sizes.pop(),
             "message_id": mid, "trace_ids": [api["trace_id"], cc["trace_id"]],
             "stalled": apigw not in ddb_cons, "root_start_us": us(api["start_time"]),
             "failed_request_ids": sorted(x["aws"]["request_id"] for x in fails),
             "off_path": sorted(i for x in fails for i in
                                [x["id"], fn_of_lam[x["id"]]["id"]] +
                                [s["id"] for s in under(fn_of_lam[x["id"]])
                                 if s.get("name") == "Invocation" or failed_call(s)])}
        if t["stalled"]:
            t["pending"] = [{"via": "dynamodb", "resource": "payments", "from": puts[0]["id"]}]
        else:
            lrid, lsize, dseq = ddb_cons[apigw]
            rl = lam[lrid]
            # the n-th "ledger written" line of the invocation names its n-th PutRecord
            lines = [c for c in sorted(corr_lines[("record-ledger", lrid)]) if c[2] == "ledger written"]
            precs = ops(fn_of_lam[rl["id"]], "PutRecord")
            assert len(lines) == len(precs) == lsize, (apigw, len(lines), len(precs), lsize)
            prec = precs[[c[1] for c in lines].index(apigw)]
            krid, ksize, kseq = kin_cons[apigw]
            sr = lam[krid]
            nodes += [(rl["start_time"], rl["end_time"], "record-ledger"),
                      (sr["start_time"], sr["end_time"], "send-receipt")]
            pairs += [(puts[0], rl), (prec, sr)]
            t.update({"ddb_sequence": dseq, "kinesis_sequence": kseq, "ledger": (lrid, lsize, rl["trace_id"]),
                      "receipt": (krid, ksize, sr["trace_id"])})
        via = {"SendMessage": ("sqs", "payments-queue"), "PutItem": ("dynamodb", "payments"),
               "PutRecord": ("kinesis", "payment-events")}
        t["hops"] = sorted((via[p["aws"]["operation"]] + (round((c["start_time"] - p["end_time"]) * 1000, 3),))
                           for p, c in pairs)
        t["skew_pairs"] = sorted([p["id"], c["id"]] for p, c in pairs if c["start_time"] < p["end_time"])
        allnodes = nodes + [(x["start_time"], x["end_time"], "charge-card") for x in fails]
        start, end = min(n[0] for n in allnodes), max(n[1] for n in allnodes)
        sink = max(range(len(nodes)), key=lambda i: nodes[i][1])
        t.update({"start_us": us(start), "end_us": us(end), "duration_ms": round((end - start) * 1000, 3),
                  "path": [n[2] for n in nodes[:sink + 1]], "skew": bool(t["skew_pairs"])})
        out[apigw] = t
    return out


def agree(truth, extra, derived):
    """truth.json (and truth-extra.json) against the derivation."""
    bad = []
    if len(derived) != len(truth):
        bad.append(f"derived {len(derived)} requests, truth has {len(truth)}")
    for t in truth:
        g, errs = derived.get(t["apigw_request_id"]), []
        if g is None:
            bad.append(f"request {t['i']}: not derivable")
            continue
        for k in ("correlation_id", "create_request_id", "process_request_id", "batch_size", "message_id",
                  "stalled", "path", "start_us", "end_us", "root_start_us", "skew", "pending"):
            if t.get(k) != g.get(k):
                errs.append(f"{k} {t.get(k)} != derived {g.get(k)}")
        for k in ("ddb_sequence", "kinesis_sequence"):
            if not t["stalled"] and t.get(k) != g.get(k):
                errs.append(f"{k} {t.get(k)} != derived {g.get(k)}")
        if abs(t["duration_ms"] - g["duration_ms"]) > TOL_MS:
            errs.append(f"duration {t['duration_ms']} != derived {g['duration_ms']}")
        th = sorted((h["via"], h["resource"], h["wait_ms"]) for h in t["hops"])
        if len(th) != len(g["hops"]) or any(a[:2] != b[:2] or abs(a[2] - b[2]) > TOL_MS
                                            for a, b in zip(th, g["hops"])):
            errs.append(f"hops {th} != derived {g['hops']}")
        for k in ("skew_pairs", "failed_request_ids", "off_path"):
            if sorted(t[k]) != g[k]:
                errs.append(f"{k} {sorted(t[k])} != derived {g[k]}")
        tids = list(g["trace_ids"])
        if not t["stalled"]:
            for key, (rid, size, tid) in (("index_request_id", g["ledger"]), ("notify_request_id", g["receipt"])):
                if (t.get(key), size == 1) not in ((rid, True), (None, False)):
                    errs.append(f"{key} {t.get(key)} (derived {rid}, batch {size})")
                if size == 1:
                    tids.append(tid)
            x = extra.get(t["apigw_request_id"])
            if extra and x is None:
                errs.append("missing from truth-extra.json")
            elif x is not None:
                (lrid, ln, ltid), (krid, kn, ktid) = g["ledger"], g["receipt"]
                wants = {"index_request_id": (lrid, ln), "ledger_trace_id": (ltid, ln),
                         "ddb_sequence": (g["ddb_sequence"], 1), "notify_request_id": (krid, kn),
                         "receipt_trace_id": (ktid, kn), "kinesis_sequence": (g["kinesis_sequence"], 1)}
                for lk in x["lookups"]:
                    if (lk["id"], lk["want"]) != wants[lk["what"]]:
                        errs.append(f"extra {lk['what']} {lk['id']}/{lk['want']} != {wants[lk['what']]}")
        if t["trace_ids"] != tids:
            errs.append(f"trace_ids {t['trace_ids']} != derived {tids}")
        if errs:
            bad.append(f"request {t['i']}: " + "; ".join(errs[:4]))
    return bad


def shape(docs, cwl, kin, truth):
    """What the corpus must contain, counted from the documents."""
    events = [json.loads(e["message"]) for m in cwl + kin for e in m["logEvents"]
              if e["message"].startswith("{")]
    ev_lines = [e for e in events if "event" in e]
    charge_logged = {e["function_request_id"] for e in ev_lines if e["service"] == "charge-card"}
    charge_lams = [d for d in docs if d.get("origin") == "AWS::Lambda" and d["name"] == "charge-card"]
    subs = [s for d in docs for s, _, _ in flatten(d)]
    api_starts = [d["start_time"] for d in docs if d.get("origin") == "AWS::ApiGateway::Stage"]
    streams = [{m["logStream"] for m in ms} for ms in (cwl, kin)]
    return {
        "link-only batches": sum(1 for d in charge_lams if d["aws"]["request_id"] not in charge_logged),
        "skewed hops": sum(len(t["skew_pairs"]) for t in truth),
        "redelivered messages": sum(1 for e in ev_lines for r in e["event"].get("Records", [])
                                    if r.get("attributes", {}).get("ApproximateReceiveCount") == "2"),
        "throttled writes": sum(1 for s in subs if s.get("throttle")),
        "faulted segments": sum(1 for d in docs if d.get("fault")),
        "stale event lines": sum(1 for e in ev_lines if "correlation_id" in e),
        "stalled": sum(1 for t in truth if t["stalled"]),
        "out-of-order arrival": sum(1 for a, b in zip(api_starts, api_starts[1:]) if b < a),
        "log streams in both files": len(streams[0] & streams[1]),
    }


def check_store(hop, db, truth, extra):
    """Every request by every id; each distinct id looked up once."""
    wants = {}   # request index -> [(what, id, count or None)]
    for t in truth:
        w = [("apigw", t["apigw_request_id"], 1), ("message id", t["message_id"], 1),
             ("correlation id", t["correlation_id"], 1),
             ("charge-card request id", t["process_request_id"], t["batch_size"])]
        w += [("failed attempt", rid, t["batch_size"]) for rid in t["failed_request_ids"]]
        w += [(kind, ident, n) for kind, ident, n in other_ids(t)]
        w += [(lk["what"], lk["id"], lk["want"]) for lk in extra.get(t["apigw_request_id"], {}).get("lookups", [])]
        wants[t["i"]] = w
    ids = sorted({ident for w in wants.values() for _, ident, _ in w})
    with ThreadPoolExecutor(max_workers=2) as pool:
        got = dict(zip(ids, pool.map(lambda i: lookup(hop, db, i), ids)))
    bad = 0
    for t in truth:
        reqs, err = got[t["apigw_request_id"]]
        if reqs is None or len(reqs) != 1:
            errs = [f"apigw id: {err or f'{len(reqs)} requests'}"]
        else:
            root = reqs[0].get("root")
            errs = check_request(reqs[0], t)
            for what, ident, n in wants[t["i"]][1:]:
                rs, err = got[ident]
                if rs is None:
                    errs.append(f"{what} {ident}: {err}")
                elif n is not None and len(rs) != n:
                    errs.append(f"{what} {ident} names {len(rs)} requests, expected {n}")
                elif root not in {r.get("root") for r in rs}:
                    errs.append(f"{what} {ident} does not name this request")
        if errs:
            bad += 1
            if bad <= 10:
                print(f"request {t['i']} ({t['apigw_request_id']}): " + "; ".join(errs)[:900])
    print(f"{len(truth) - bad}/{len(truth)} requests exact by every id ({len(ids)} ids looked up)")
    return bad == 0


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    hop = os.path.abspath(argv[1])
    n, seed = int(argv[2]), int(argv[3])
    k = int(argv[4]) if len(argv) > 4 else 1
    work = tempfile.mkdtemp(prefix="ht-simhard-")
    try:
        outs = []
        for name in ("a", "b"):
            d = os.path.join(work, name)
            p = run([hop, "simulate", "--requests", str(n), "--seed", str(seed),
                     "--stream-batch", str(k), "--out", d] + ADV)
            if p.returncode != 0:
                print(f"FAIL: simulate exit {p.returncode}: {p.stderr.strip()}")
                return 1
            outs.append(d)
        print(p.stderr.strip())
        a = outs[0]
        names = FILES + ["truth.json"] + (["truth-extra.json"] if k > 1 else [])
        for f in names:
            if open(os.path.join(a, f), "rb").read() != open(os.path.join(outs[1], f), "rb").read():
                print(f"FAIL: {f} differs between two runs with seed {seed}")
                return 1
        truth = json.load(open(os.path.join(a, "truth.json")))["requests"]
        extra = {}
        if k > 1:
            extra = {x["apigw_request_id"]: x
                     for x in json.load(open(os.path.join(a, "truth-extra.json")))["requests"]}
        docs, cwl, kin = load(a)
        bad = agree(truth, extra, derive(docs, cwl + kin))
        for b in bad[:10]:
            print(b)
        print(f"{len(truth) - len(bad)}/{len(truth)} truth entries agree with the documents")
        if bad:
            print("FAIL: the truth disagrees with the documents")
            return 1
        s = shape(docs, cwl, kin, truth)
        print(", ".join(f"{v} {x}" for x, v in s.items()))
        missing = [x for x, v in s.items() if v == 0]
        if len(truth) != n or missing:
            print(f"FAIL: the corpus lacks {missing or 'requests'}")
            return 1
        db = os.path.join(work, "db")
        p = run([hop, "--db", db, "ingest"] + [os.path.join(a, f) for f in FILES])
        if p.returncode != 0:
            print(f"FAIL: ingest exit {p.returncode}: {p.stderr.strip()[-500:]}")
            return 1
        print("ingest:", p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "")
        ok = check_store(hop, db, truth, extra)
        print(("PASS" if ok else "FAIL") + f": simulate with adversities N={n} seed={seed} stream-batch={k}")
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
