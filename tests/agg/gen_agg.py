#!/usr/bin/env python3
"""Hand-built fixture for endpoints / hotspots / functions / fan-out.

usage: gen_agg.py OUTDIR      (tests/agg/routes is its committed output)

Every duration is chosen here, so every expected answer is computed here
from those choices with the documented rules (nearest rank; critical path
= root self and calls up to the producing call, the queue wait, then the
slowest branch's own time), independently of hoptrace:

  - REST API r3st01/prod, GET /orders/{orderId}: 7 requests, 5 whose logged
    proxy events carry `resource` (one 404, one 502), a cold first start,
    and 2 with no logged event (counted under the template all the same);
  - REST API r3st01/prod, POST /carts/{id}/items: 4 requests, no logged
    event (the route comes from the stage URL, the UUID collapses to
    {id}); each sends to SQS cart-events, cart-indexer consumes three of
    the messages, the fourth is still pending (incomplete);
  - HTTP API h77p02/$default, GET /users/{userId}: 3 requests known from
    the function's trace and its logged v2 event's routeKey (one 429);
  - a scheduled job, nightly-report: one SendMessageBatch of 3 messages to
    report-jobs, three cold render-report branches; the second finishes
    last and is the critical branch.
"""
import json
import math
import os
import random
import sys

REGION, ACCOUNT = "us-east-1", "123456789012"
T0 = 1796500000_000000
SERVICE = {"runtime": "node", "runtime_version": "v20.20.2", "version": "unknown", "name": "unknown"}
R = random.Random(7)


def hexid(n=16):
    return "".join(R.choice("0123456789abcdef") for _ in range(n))


def uuid():
    h = hexid(32)
    return "%s-%s-4%s-a%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:])


def trace_id(us):
    return "1-%08x-%s" % (us // 1000000, hexid(24))


def T(us):
    return round(us / 1e6, 6)


def iso(ms):
    import datetime
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def nearest(vals, p):
    v = sorted(vals)
    return v[max(1, min(len(v), math.ceil(p / 100.0 * len(v) - 1e-9))) - 1]


class World:
    def __init__(self):
        self.docs = []      # (end, doc)
        self.logs = {}      # (fn, stream) -> [(ts_ms, message)]
        self.reports = []   # (fn, duration_ms, billed, mem, used, init_ms)
        self.warm = {}      # fn -> log stream of a warm container

    def log(self, fn, stream, ts_ms, msg):
        self.logs.setdefault((fn, stream), []).append((ts_ms, msg))

    def invoke(self, fn, start, run_us, *, parent=None, trace=None, cold=False,
               init_us=0, calls=(), event=None, status=None, mem_used=100):
        """A traced invocation: AWS::Lambda segment [start, end], function
        segment, optional Initialization, Invocation with calls (each
        (offset_us, dur_us, name, aws) inside it), Overhead. Returns
        (lambda_segment_id, trace, end_us, call ids, request id)."""
        rid = uuid()
        lam_id, fn_id = hexid(), hexid()
        fs = start + 1000                       # function segment start
        t = fs
        subs = []
        if cold:
            subs.append({"id": hexid(), "name": "Initialization", "start_time": T(t),
                         "end_time": T(t + init_us)})
            t += init_us
        inv_start = t
        inv_end = t + run_us
        csubs, ids = [], []
        for off, dur, name, aws in calls:
            cid = hexid()
            ids.append(cid)
            csubs.append({"id": cid, "name": name, "namespace": "aws",
                          "start_time": T(inv_start + off), "end_time": T(inv_start + off + dur),
                          "aws": dict(aws, region=REGION)})
        inv = {"id": hexid(), "name": "Invocation", "start_time": T(inv_start), "end_time": T(inv_end)}
        if csubs:
            inv["subsegments"] = csubs
        subs.append(inv)
        subs.append({"id": hexid(), "name": "Overhead", "start_time": T(inv_end),
                     "end_time": T(inv_end + 500)})
        fend = inv_end + 500
        lend = fend + 500
        trace = trace or trace_id(start)
        lam = {"trace_id": trace, "id": lam_id, "start_time": T(start), "end_time": T(lend),
               "name": fn, "origin": "AWS::Lambda", "service": SERVICE,
               "aws": {"request_id": rid},
               "resource_arn": "arn:aws:lambda:%s:%s:function:%s" % (REGION, ACCOUNT, fn)}
        if parent:
            lam["parent_id"] = parent
        if status:
            lam["http"] = {"response": {"status": status}}
            if status == 429:
                lam["throttle"] = True
                lam["error"] = True
        func = {"trace_id": trace, "id": fn_id, "parent_id": lam_id, "start_time": T(fs),
                "end_time": T(fend), "name": fn, "origin": "AWS::Lambda::Function",
                "aws": {"function_arn": "arn:aws:lambda:%s:%s:function:%s" % (REGION, ACCOUNT, fn),
                        "resource_names": [fn], "account_id": ACCOUNT},
                "subsegments": subs}
        self.docs += [(fend, func), (lend, lam)]
        # logs: a cold start gets a new container (log stream)
        if cold or fn not in self.warm:
            self.warm[fn] = "2026/12/04/[$LATEST]" + hexid(32)
        stream = self.warm[fn]
        s_ms, e_ms = (inv_start + 500) // 1000, (fend + 500) // 1000
        self.log(fn, stream, s_ms, "START RequestId: %s Version: $LATEST\n" % rid)
        if event is not None:
            line = {"level": "INFO", "message": "Lambda invocation event", "timestamp": iso(s_ms),
                    "service": fn, "cold_start": cold, "function_name": fn,
                    "function_memory_size": "512", "function_request_id": rid,
                    "xray_trace_id": trace, "event": event}
            self.log(fn, stream, s_ms, json.dumps(line, separators=(",", ":")))
        self.log(fn, stream, e_ms, "END RequestId: %s\n" % rid)
        dur_ms = run_us / 1000
        billed = math.ceil(dur_ms)
        parts = ["REPORT RequestId: %s" % rid, "Duration: %.2f ms" % dur_ms,
                 "Billed Duration: %d ms" % billed, "Memory Size: 512 MB",
                 "Max Memory Used: %d MB" % mem_used]
        if cold:
            parts.append("Init Duration: %.2f ms" % (init_us / 1000))
        rep = "\t".join(parts) + "\t\nXRAY TraceId: %s\tSegmentId: %s\tSampled: true\t\n" % (trace, fn_id)
        self.log(fn, stream, e_ms, rep)
        self.reports.append((fn, dur_ms, billed, 512, mem_used, init_us / 1000 if cold else None))
        return lam_id, trace, lend, ids, rid

    def stage(self, api, stage, method, url_path, start, status, fn, run_us, *, cold=False,
              init_us=0, calls=(), event=None):
        """API Gateway stage segment around a synchronous Invoke."""
        tr = trace_id(start)
        sid, cid = hexid(), hexid()
        lam_start = start + 3000
        lam_id, _, lend, ids, rid = self.invoke(fn, lam_start, run_us, parent=cid, trace=tr,
                                                cold=cold, init_us=init_us, calls=calls,
                                                event=event)
        call_end = lend + 1000
        end = call_end + 2000
        doc = {"trace_id": tr, "id": sid, "start_time": T(start), "end_time": T(end),
               "name": "%s/%s" % (api, stage), "origin": "AWS::ApiGateway::Stage",
               "service": SERVICE,
               "aws": {"api_gateway": {"account_id": ACCOUNT, "rest_api_id": api, "stage": stage,
                                       "request_id": uuid()}},
               "http": {"request": {"method": method,
                                    "url": "https://%s.execute-api.%s.amazonaws.com/%s%s"
                                           % (api, REGION, stage, url_path)},
                        "response": {"status": status}},
               "subsegments": [{"id": cid, "name": "Lambda", "namespace": "aws",
                                "start_time": T(start + 2000), "end_time": T(call_end),
                                "aws": {"function_name": fn, "operation": "Invoke",
                                        "resource_names": [fn], "region": REGION}}]}
        if 400 <= status < 500:
            doc["error"] = True
        if status >= 500:
            doc["fault"] = True
        self.docs.append((end, doc))
        return {"trace": tr, "start": start, "end": end, "ids": ids, "rid": rid}

    def sqs_consumer(self, fn, queue, records, start, run_us, *, cold=False, init_us=0):
        """An SQS-triggered invocation in its own trace; records are
        (message_id, AWSTraceHeader or None, sent_ms)."""
        ev = {"Records": [{"messageId": mid, "receiptHandle": "AQEB" + hexid(40), "body": "{}",
                           "attributes": dict({"ApproximateReceiveCount": "1",
                                               "SentTimestamp": str(sent)},
                                              **({"AWSTraceHeader": hdr} if hdr else {})),
                           "messageAttributes": {}, "eventSource": "aws:sqs",
                           "eventSourceARN": "arn:aws:sqs:%s:%s:%s" % (REGION, ACCOUNT, queue),
                           "awsRegion": REGION} for mid, hdr, sent in records]}
        return self.invoke(fn, start, run_us, cold=cold, init_us=init_us, event=ev)


def queue_url(q):
    return "https://sqs.%s.amazonaws.com/%s/%s" % (REGION, ACCOUNT, q)


def q4(vals):
    if not vals:
        return {"p50": None, "p90": None, "p99": None, "max": None}
    return {"p50": nearest(vals, 50) / 1000, "p90": nearest(vals, 90) / 1000,
            "p99": nearest(vals, 99) / 1000, "max": max(vals) / 1000}


def build():
    w = World()
    routes = {}

    def add(route, api, stage, sync_us, e2e_us, flags=()):
        r = routes.setdefault((route, api, stage), {"sync": [], "e2e": [], "count": 0, "errors": 0,
                                                    "faults": 0, "throttles": 0, "incomplete": 0})
        r["count"] += 1
        r["sync"].append(sync_us)
        for f in flags:
            r[f] += 1
        if e2e_us is None:
            r["incomplete"] += 1
        else:
            r["e2e"].append(e2e_us)

    # GET /orders/{orderId}: run times and statuses chosen by hand
    t = T0
    # the last two logged no event: their stage URL's route, GET /orders/{id},
    # is counted under the template the others' events named
    for k, (run, status) in enumerate([(41000, 200), (23000, 200), (88000, 404), (30000, 200),
                                       (57000, 502), (35000, 200), (64000, 200)]):
        oid = str(1000 + 17 * k)
        ev = {"resource": "/orders/{orderId}", "path": "/orders/" + oid, "httpMethod": "GET",
              "headers": {}, "pathParameters": {"orderId": oid},
              "requestContext": {"requestId": uuid(), "stage": "prod", "apiId": "r3st01",
                                 "requestTimeEpoch": t // 1000}}
        st = w.stage("r3st01", "prod", "GET", "/orders/" + oid, t, status, "get-order", run,
                     cold=(k == 0), init_us=212000 if k == 0 else 0,
                     calls=[(2000, run - 5000, "DynamoDB",
                             {"operation": "GetItem", "table_name": "orders"})],
                     event=ev if k < 5 else None)
        flags = ["errors"] if status == 404 else (["faults"] if status == 502 else [])
        add("GET /orders/{orderId}", "r3st01", "prod", st["end"] - st["start"],
            st["end"] - st["start"], flags)
        t += 20_000000

    # POST /carts/{id}/items: a send to SQS, three consumed, one pending
    for k, (run, wait, crun) in enumerate([(30000, 15000, 60000), (26000, 40000, 45000),
                                           (35000, None, None), (28000, 22000, 130000)]):
        cart = uuid()
        mid = uuid()
        st = w.stage("r3st01", "prod", "POST", "/carts/%s/items" % cart, t, 200, "add-item", run,
                     calls=[(3000, 12000, "SQS", {"operation": "SendMessage",
                                                   "queue_url": queue_url("cart-events"),
                                                   "message_id": mid})])
        e2e = None
        if wait is not None:
            send_end = None
            # the send ends at invocation start + 3 ms + 12 ms; find it from the doc
            for _, d in w.docs:
                for s in d.get("subsegments", []):
                    for c in s.get("subsegments", []):
                        if c["id"] == st["ids"][0]:
                            send_end = round(c["end_time"] * 1e6)
            cstart = send_end + wait
            _, _, cend, _, _ = w.sqs_consumer("cart-indexer", "cart-events",
                                              [(mid, None, send_end // 1000)], cstart, crun,
                                              cold=(k == 0), init_us=180000 if k == 0 else 0)
            e2e = max(cend, st["end"]) - st["start"]
        add("POST /carts/{id}/items", "r3st01", "prod", st["end"] - st["start"], e2e)
        t += 20_000000

    # HTTP API: no stage segment (HTTP APIs are not traced); the route key
    # comes from the logged v2 event
    for k, (run, status) in enumerate([(18000, 200), (64000, 429), (25000, 200)]):
        uid = str(42 + k)
        ev = {"version": "2.0", "routeKey": "GET /users/{userId}", "rawPath": "/users/" + uid,
              "headers": {}, "pathParameters": {"userId": uid},
              "requestContext": {"apiId": "h77p02", "stage": "$default", "requestId": uuid(),
                                 "http": {"method": "GET", "path": "/users/" + uid},
                                 "timeEpoch": t // 1000}}
        lam_id, tr, lend, _, _ = w.invoke("get-user", t, run, event=ev, status=status,
                                          cold=(k == 0), init_us=150000 if k == 0 else 0,
                                          mem_used=480)
        add("GET /users/{userId}", "h77p02", "$default", lend - t, lend - t,
            ["throttles", "errors"] if status == 429 else [])
        t += 20_000000

    # the scheduled fan-out job
    job_start = t
    run = 70000
    batch_off, batch_dur = 20000, 9000
    lam_id, tr, jend, ids, _ = w.invoke(
        "nightly-report", job_start, run,
        calls=[(batch_off, batch_dur, "SQS", {"operation": "SendMessageBatch",
                                              "queue_url": queue_url("report-jobs")})])
    batch_id = ids[0]
    # nightly-report is warm-started? no: first invocation, but we keep it warm
    batch_end = job_start + 1000 + batch_off + batch_dur
    branches = []
    for k, (wait, crun, init) in enumerate([(20000, 300000, 120000), (35000, 900000, 110000),
                                            (50000, 400000, 130000)]):
        hdr = "Root=%s;Parent=%s;Sampled=1" % (tr, batch_id)
        cstart = batch_end + wait
        clam, _, cend, _, _ = w.sqs_consumer("render-report", "report-jobs",
                                             [(uuid(), hdr, batch_end // 1000)], cstart, crun,
                                             cold=True, init_us=init)
        branches.append({"to": clam, "wait_us": wait, "end_us": cend, "init": init,
                         "start": cstart})
    crit = max(branches, key=lambda b: b["end_us"])
    e2e = crit["end_us"] - job_start
    add("nightly-report", "", "", jend - job_start, e2e)
    # its critical path by hand: the job's own time up to the batch call,
    # the call, the wait, then the slowest branch (init, then its own time)
    items = [
        ("nightly-report", "self", None, None, batch_end - batch_dur - job_start),
        ("nightly-report", "call", None, None, batch_dur),
        ("render-report", "wait", "sqs", "report-jobs", crit["wait_us"]),
        ("render-report", "init", None, None, crit["init"]),
        ("render-report", "self", None, None, crit["end_us"] - crit["start"] - crit["init"]),
    ]
    assert sum(i[4] for i in items) == e2e
    items.sort(key=lambda i: -i[4])
    hot = {"route": "nightly-report", "percentile": 0, "requests": 1, "total_ms": e2e / 1000,
           "items": []}
    for svc, kind, via, res, us in items:
        it = {"service": svc, "kind": kind}
        if via:
            it.update(via=via, resource=res)
        it.update(ms=us / 1000, share=round(us / e2e, 4))
        hot["items"].append(it)
    folded = "".join("nightly-report;%s;%s%s %d\n" % (svc, kind, " %s:%s" % (via, res) if via else "",
                                                      us) for svc, kind, via, res, us in items)
    fan = {"via": "sqs", "resource": "report-jobs", "width": 3, "critical": crit["to"],
           "branches": [{"to": b["to"], "critical": b is crit} for b in branches]}

    endpoints = {"routes": []}
    for (route, api, stage), r in sorted(routes.items(), key=lambda x: (-x[1]["count"], x[0])):
        endpoints["routes"].append({
            "route": route, "api": api, "stage": stage, "count": r["count"],
            "errors": r["errors"], "faults": r["faults"], "throttles": r["throttles"],
            "incomplete": r["incomplete"], "sync_ms": q4(r["sync"]), "e2e_ms": q4(r["e2e"])})

    fns = {}
    for fn, dur, billed, mem, used, init in w.reports:
        f = fns.setdefault(fn, {"name": fn, "inv": 0, "cold": 0, "init": [], "dur": [], "billed": 0,
                                "used": []})
        f["inv"] += 1
        f["dur"].append(dur)
        f["billed"] += billed
        f["used"].append(used)
        if init is not None:
            f["cold"] += 1
            f["init"].append(init)
    functions = {"functions": []}
    for fn in sorted(fns):
        f = fns[fn]
        gbs = f["billed"] / 1000 * 512 / 1024
        functions["functions"].append({
            "name": fn, "invocations": f["inv"], "cold_starts": f["cold"],
            "init_ms": {"p50": nearest(f["init"], 50), "p99": nearest(f["init"], 99)}
            if f["init"] else {"p50": None, "p99": None},
            "duration_ms": {"p50": nearest(f["dur"], 50), "p99": nearest(f["dur"], 99)},
            "billed_ms": f["billed"], "memory_mb": 512,
            "max_memory_used_mb": {"p50": nearest(f["used"], 50), "p99": nearest(f["used"], 99)},
            "gb_seconds": round(gbs, 6),
            "cost_usd": round(gbs * 0.0000166667 + f["inv"] * 0.0000002, 10),
            "over_provisioned": nearest(f["used"], 99) < 0.3 * 512,
            "under_provisioned": nearest(f["used"], 99) >= 0.9 * 512})
    return w, endpoints, hot, folded, fan, functions


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    w, endpoints, hot, folded, fan, functions = build()
    with open(os.path.join(out, "segments.ndjson"), "w") as f:
        for _, d in sorted(w.docs, key=lambda x: x[0]):
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    n = 0
    with open(os.path.join(out, "logs-cwl.ndjson"), "w") as f:
        for (fn, stream), evs in sorted(w.logs.items()):
            events = []
            for ts, m in sorted(evs, key=lambda e: e[0]):
                n += 1
                events.append({"id": "%013d%043d" % (ts, n), "timestamp": ts, "message": m})
            f.write(json.dumps({"messageType": "DATA_MESSAGE", "owner": ACCOUNT,
                                "logGroup": "/aws/lambda/" + fn, "logStream": stream,
                                "subscriptionFilters": ["hoptrace"], "logEvents": events}) + "\n")
    for name, obj in (("expected-endpoints.json", endpoints), ("expected-hotspots.json", hot),
                      ("expected-fanout.json", fan), ("expected-functions.json", functions)):
        with open(os.path.join(out, name), "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)
            f.write("\n")
    with open(os.path.join(out, "expected-hotspots.folded"), "w") as f:
        f.write(folded)


if __name__ == "__main__":
    main()
