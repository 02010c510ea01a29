#!/usr/bin/env python3
"""Re-derive a payments-shaped corpus's truth from its raw documents and hold
it against the corpus's truth.json (and truth-extra.json when present).

usage: derive_truth.py DIR [--tol-ms T]

Independent of gen_corpus.py: reads only segments.ndjson, logs-cwl.ndjson and
logs-kinesis.json, follows the ids the way the documents link them (Invoke
subsegment -> AWS::Lambda parent_id, SQS messageId in the logged event,
correlation_id in the DynamoDB NewImage / Kinesis data, the n-th "ledger
written" line <-> the n-th PutRecord of its invocation) and recomputes
duration_ms, hops, path, batch sizes, ids and trace ids.  Run it on
shared/samples/payments to confirm the semantics match the sample's truth.
Exit 0 when everything agrees.
"""
import base64
import gzip
import json
import os
import sys

PIPE = ["api", "start-payment", "charge-card", "record-ledger", "send-receipt"]


def us(x):
    return round(x * 1e6)


def load(d):
    docs = []
    lines = open(os.path.join(d, "segments.ndjson")).read().split("\n")
    for i in range(0, len(lines) - 1, 2):
        if lines[i].strip():
            docs.append(json.loads(lines[i + 1]))
    msgs = [json.loads(l) for l in open(os.path.join(d, "logs-cwl.ndjson")) if l.strip()]
    for r in json.load(open(os.path.join(d, "logs-kinesis.json")))["Records"]:
        msgs.append(json.loads(gzip.decompress(base64.b64decode(r["Data"]))))
    events = []
    for m in msgs:
        if m.get("messageType") != "DATA_MESSAGE":
            continue
        fn = m["logGroup"].rsplit("/", 1)[-1]
        for e in m["logEvents"]:
            events.append((fn, e))
    return docs, events


def flatten(doc, trace=None, parent=None, out=None):
    out = [] if out is None else out
    trace = doc.get("trace_id", trace)
    parent = doc.get("parent_id", parent)
    out.append((doc, trace, parent))
    for s in doc.get("subsegments", []):
        flatten(s, trace, doc["id"], out)
    return out


def derive(d):
    docs, events = load(d)
    spans = []
    for doc in docs:
        spans += flatten(doc)
    by_id = {s[0]["id"]: s for s in spans}
    lam = {}          # request id -> AWS::Lambda doc
    fn_of_lam = {}    # AWS::Lambda id -> AWS::Lambda::Function doc
    stage = {}
    for doc, tr, par in spans:
        o = doc.get("origin")
        if o == "AWS::Lambda":
            lam[doc["aws"]["request_id"]] = doc
        elif o == "AWS::Lambda::Function":
            fn_of_lam[par] = doc
        elif o == "AWS::ApiGateway::Stage":
            stage[doc["aws"]["api_gateway"]["request_id"]] = doc
    lam_by_parent = {doc.get("parent_id"): doc for doc in lam.values() if doc.get("parent_id")}

    def children_ops(fn_doc, op):
        """SDK subsegments under an invocation, nested or streamed."""
        out = []
        for doc, tr, par in spans:
            if doc.get("aws", {}).get("operation") != op or tr != fn_doc["trace_id"]:
                continue
            p = par
            while p is not None and p != fn_doc["id"]:
                p = by_id[p][2] if p in by_id else None
            if p == fn_doc["id"]:
                out.append(doc)
        return sorted(out, key=lambda x: x["end_time"])

    logged = {}       # request id -> Records
    corr_lines = {}   # (fn, request id) -> [(ts, correlation_id, message)]
    for fn, e in events:
        m = e["message"]
        if not m.startswith("{"):
            continue
        j = json.loads(m)
        rid = j.get("function_request_id")
        if "event" in j and "Records" in j["event"]:
            logged[rid] = j["event"]["Records"]
        elif "correlation_id" in j and "orderId" in j:
            corr_lines.setdefault((fn, rid), []).append((e["timestamp"], j["correlation_id"], j["message"]))

    sqs_cons, ddb_cons, kin_cons = {}, {}, {}
    for rid, recs in logged.items():
        for r in recs:
            if r.get("eventSource") == "aws:sqs":
                sqs_cons[r["messageId"]] = (rid, len(recs))
            elif r.get("eventSource") == "aws:dynamodb":
                c = r["dynamodb"]["NewImage"]["correlation_id"]["S"]
                ddb_cons[c] = (rid, len(recs), r["dynamodb"]["SequenceNumber"])
            elif r.get("eventSource") == "aws:kinesis":
                c = json.loads(base64.b64decode(r["kinesis"]["data"]))["correlation_id"]
                kin_cons[c] = (rid, len(recs), r["kinesis"]["sequenceNumber"])

    out = []
    for apigw, api in sorted(stage.items(), key=lambda kv: kv[1]["start_time"]):
        corr = apigw
        invoke = api["subsegments"][0]
        sp = lam_by_parent[invoke["id"]]
        send = children_ops(fn_of_lam[sp["id"]], "SendMessage")[0]
        mid = send["aws"]["message_id"]
        crid, bsize = sqs_cons[mid]
        cc = lam[crid]
        puts = [p for p in children_ops(fn_of_lam[cc["id"]], "PutItem")
                if p.get("annotations", {}).get("correlation_id") == corr]
        assert len(puts) == 1, (apigw, len(puts))
        nodes = [(api["start_time"], api["end_time"], "api"), (sp["start_time"], sp["end_time"], "start-payment"),
                 (cc["start_time"], cc["end_time"], "charge-card")]
        hops = [{"via": "sqs", "resource": send["aws"]["queue_url"].rsplit("/", 1)[-1],
                 "wait_ms": (cc["start_time"] - send["end_time"]) * 1000}]
        t = {"apigw_request_id": apigw, "correlation_id": corr, "create_request_id": sp["aws"]["request_id"],
             "process_request_id": crid, "batch_size": bsize, "message_id": mid,
             "trace_ids": [api["trace_id"], cc["trace_id"]], "stalled": corr not in ddb_cons}
        if corr in ddb_cons:
            lrid, lsize, dseq = ddb_cons[corr]
            rl = lam[lrid]
            # the n-th "ledger written" line of the invocation names the n-th PutRecord
            lines = [c for c in sorted(corr_lines[("record-ledger", lrid)]) if c[2] == "ledger written"]
            precs = children_ops(fn_of_lam[rl["id"]], "PutRecord")
            assert len(lines) == len(precs) == lsize, (apigw, len(lines), len(precs), lsize)
            n = [c[1] for c in lines].index(corr)
            prec = precs[n]
            assert abs(lines[n][0] - prec["end_time"] * 1000) <= 1.0
            krid, ksize, kseq = kin_cons[corr]
            sr = lam[krid]
            nodes += [(rl["start_time"], rl["end_time"], "record-ledger"),
                      (sr["start_time"], sr["end_time"], "send-receipt")]
            hops += [{"via": "dynamodb", "resource": puts[0]["aws"]["table_name"],
                      "wait_ms": (rl["start_time"] - puts[0]["end_time"]) * 1000},
                     {"via": "kinesis", "resource": "payment-events",
                      "wait_ms": (sr["start_time"] - prec["end_time"]) * 1000}]
            t.update({"index_request_id": lrid, "ddb_sequence": dseq, "notify_request_id": krid,
                      "kinesis_sequence": kseq, "ledger_batch_size": lsize, "receipt_batch_size": ksize})
            t["trace_ids"] += [rl["trace_id"], sr["trace_id"]]
        start = min(n[0] for n in nodes)
        end = max(n[1] for n in nodes)
        sink = max(range(len(nodes)), key=lambda i: nodes[i][1])
        t.update({"start_us": us(start), "end_us": us(end), "duration_ms": (end - start) * 1000, "hops": hops,
                  "path": [api["name"]] + [n[2] for n in nodes[1:sink + 1]]})
        out.append(t)
    return out


def compare(d, tol):
    derived = {t["apigw_request_id"]: t for t in derive(d)}
    truth = json.load(open(os.path.join(d, "truth.json")))
    extra = {}
    xp = os.path.join(d, "truth-extra.json")
    if os.path.exists(xp):
        extra = {r["apigw_request_id"]: r for r in json.load(open(xp))["requests"]}
    bad = []
    if len(derived) != len(truth["requests"]):
        bad.append(f"derived {len(derived)} requests, truth has {len(truth['requests'])}")
    for t in truth["requests"]:
        g = derived.get(t["apigw_request_id"])
        errs = []
        if g is None:
            bad.append(f"request {t['i']}: not derivable")
            continue
        for k in ("correlation_id", "create_request_id", "process_request_id", "batch_size", "message_id",
                  "stalled", "path", "ddb_sequence", "kinesis_sequence"):
            if k in t and t[k] != g.get(k):
                errs.append(f"{k} {t[k]} != derived {g.get(k)}")
        for k in ("start_us", "end_us"):
            if abs(t[k] - g[k]) > 1:
                errs.append(f"{k} {t[k]} != derived {g[k]}")
        if abs(t["duration_ms"] - g["duration_ms"]) > tol:
            errs.append(f"duration {t['duration_ms']} != derived {g['duration_ms']}")
        th = {(h["via"], h["resource"]): h["wait_ms"] for h in t["hops"]}
        gh = {(h["via"], h["resource"]): h["wait_ms"] for h in g["hops"]}
        if th.keys() != gh.keys():
            errs.append(f"hops {sorted(th)} != derived {sorted(gh)}")
        for k in th.keys() & gh.keys():
            if abs(th[k] - gh[k]) > tol:
                errs.append(f"hop {k} wait {th[k]} != derived {gh[k]}")
        # ids check_traces.py expects to resolve to one request: kept only when true
        for key, size_key, ti in (("index_request_id", "ledger_batch_size", 2),
                                  ("notify_request_id", "receipt_batch_size", 3)):
            if key in t:
                if t[key] != g.get(key) or g.get(size_key) != 1:
                    errs.append(f"{key} {t[key]} (derived {g.get(key)}, batch {g.get(size_key)})")
            elif not t["stalled"] and g.get(size_key) == 1:
                errs.append(f"{key} missing though its invocation served one record")
        want_tids = g["trace_ids"][:2] + [g["trace_ids"][i] for i, sk in ((2, "ledger_batch_size"),
                                                                          (3, "receipt_batch_size"))
                                           if i < len(g["trace_ids"]) and g.get(sk) == 1]
        if t["trace_ids"] != want_tids:
            errs.append(f"trace_ids {t['trace_ids']} != derived {want_tids}")
        x = extra.get(t["apigw_request_id"])
        if x is not None:
            wants = {"index_request_id": (g.get("index_request_id"), g.get("ledger_batch_size")),
                     "ledger_trace_id": (g["trace_ids"][2], g.get("ledger_batch_size")),
                     "ddb_sequence": (g.get("ddb_sequence"), 1),
                     "notify_request_id": (g.get("notify_request_id"), g.get("receipt_batch_size")),
                     "receipt_trace_id": (g["trace_ids"][3], g.get("receipt_batch_size")),
                     "kinesis_sequence": (g.get("kinesis_sequence"), 1)}
            for lk in x["lookups"]:
                if (lk["id"], lk["want"]) != wants[lk["what"]]:
                    errs.append(f"extra {lk['what']} {lk['id']}/{lk['want']} != derived {wants[lk['what']]}")
        elif extra and not t["stalled"]:
            errs.append("missing from truth-extra.json")
        if errs:
            bad.append(f"request {t['i']}: " + "; ".join(errs[:4]))
    for b in bad[:10]:
        print(b)
    print(f"{len(truth['requests']) - len(bad)}/{len(truth['requests'])} truth entries agree with the documents")
    return 0 if not bad else 1


if __name__ == "__main__":
    tol = 0.001
    if "--tol-ms" in sys.argv:
        tol = float(sys.argv[sys.argv.index("--tol-ms") + 1])
    sys.exit(compare(sys.argv[1], tol))
