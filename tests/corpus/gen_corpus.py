#!/usr/bin/env python3
"""Deterministic corpus generator for hoptrace (Python 3.11, stdlib only).

usage: gen_corpus.py --requests N --seed S --out DIR
                     [--stream-batch K] [--stalled M] [--order stage|time|shuffled]
                     [--link-only P] [--skew P] [--redeliver P]

Simulates the payments pipeline of shared/samples/payments, exact to the
microsecond:

  API Gateway checkout-api/live -> start-payment -> SQS payments-queue
  -> charge-card (SQS batches of 1..10) -> DynamoDB payments
  -> DynamoDB Streams -> record-ledger (batches of 1..K, one Kinesis
  PutRecord per record) -> Kinesis payment-events
  -> send-receipt (batches of 1..K, one SNS Publish per record)

and writes, in the sample's layout:

  segments.ndjson    X-Ray daemon datagrams (header line, document line)
  logs-cwl.ndjson    CloudWatch Logs subscription DATA_MESSAGEs, one a line
  logs-kinesis.json  Kinesis GetRecords response, Data = base64(gzip(msg))
  truth.json         the sample's truth schema (what check_traces.py reads)
  truth-extra.json   only with --stream-batch K>1: every stream-consumer id
                     with the number of requests it must resolve to

Truth semantics (the sample's): duration_ms = latest end - earliest start
over all nodes of the request, a batch invocation belonging to every request
it served; a hop's wait_ms = consumer AWS::Lambda segment start - producer
subsegment end; path = services on the critical path, API stage to the
last-finishing node (charge-card for stalled requests).

check_traces.py expects a lookup by index_request_id / notify_request_id and
by the DDB / Kinesis consumer trace ids to return exactly one request.  With
--stream-batch 1 (default) that holds for every request.  With K>1, truth.json
keeps those ids only for requests whose stream-consumer invocation served a
single record; truth-extra.json lists all of them with the expected counts.

The last M requests by DynamoDB write time (default max(2, N//25)) are never
consumed by record-ledger: the DynamoDB Streams stage is stalled, as in the
sample.  Some warm consumer invocations log a plain info line that still
carries the previous invocation's correlation_id (Powertools appendKeys left
over) before any record of the new invocation is handled.

Adversities of real telemetry (issue 12), each off by default and drawn from
a random stream of their own, so that a corpus without them is unchanged:

  --link-only P   a charge-card batch logs no event: its SQS hop is known
                  only from the X-Ray links of its AWS::Lambda segment
  --skew P        a consumer container (charge-card, record-ledger,
                  send-receipt) runs on a host whose clock is 50 ms to 2 s
                  behind: everything it reports is that much early, so a
                  consumer can start before its producer's call ends
  --redeliver P   a charge-card batch fails first (its first PutItem is
                  throttled with ProvisionedThroughputExceededException and
                  the function faults); after the visibility timeout (30 s)
                  the same messages (ApproximateReceiveCount 2) reach an
                  invocation that succeeds
  --order shuffled  documents and log messages in random arrival order

With any of them the truth (exact, from the simulated clocks as observed
by each host) is checked by check_hard.py: every hop, one per consumer
attempt, duration, path from the root, skew warnings where clocks disagree,
failed attempts off the path.
"""
import argparse
import base64
import datetime
import gzip
import hashlib
import json
import math
import os
import random
import sys
import uuid

ACCOUNT = "123456789012"
REGION = "us-east-1"
API_NAME = "checkout-api/live"
REST_API = "abc123"
QUEUE = "payments-queue"
TABLE = "payments"
STREAM = "payment-events"
TOPIC = "customer-mail"
F_START, F_CHARGE, F_LEDGER, F_RECEIPT = "start-payment", "charge-card", "record-ledger", "send-receipt"
FUNCS = [F_START, F_CHARGE, F_LEDGER, F_RECEIPT]
SERVICE = {"runtime": "node", "runtime_version": "v20.20.2", "version": "unknown", "name": "unknown"}
XRAY_SDK = {"sdk": "X-Ray for Node.js", "sdk_version": "3.12.0", "package": "aws-xray-sdk-core"}
T0_US = 1795700000_000000          # 2026-11-26T13:33:20Z, as in the sample
DDB_SEQ0 = 4000000000000000000000
KIN_SEQ0 = 49600000000000000000000000000000000000000000000000000000
LOGS_SEQ0 = 49700000000000000000000000000
MS = 1000
STALE_P = 0.3                       # share of warm consumer invocations with a stale correlation_id line
LINKS_P = 0.5                       # share of charge-card invocations whose segment carries X-Ray links
COLD_P = 0.02                       # spontaneous scale-out even when a warm container is free


def sec(us):
    """Epoch microseconds -> X-Ray float seconds (prints as 1795700000.057593)."""
    return us / 1e6


def ms(us):
    return (us + 500) // 1000


def iso(us):
    m = ms(us)
    t = datetime.datetime.fromtimestamp(m // 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{m % 1000:03d}Z"


def dumps(o):
    return json.dumps(o, separators=(",", ":"), ensure_ascii=False)


class Gen:
    def __init__(self, n, seed, stream_batch, stalled, order, link_only=0.0, skew=0.0,
                 redeliver=0.0):
        self.n = n
        self.rng = random.Random(seed)
        self.adv = random.Random(seed * 7919 + 17)   # the adversities' own stream
        self.p_link_only, self.p_skew, self.p_redeliver = link_only, skew, redeliver
        self.k = stream_batch
        self.order = order
        self.n_stalled = stalled if stalled is not None else (max(2, n // 25) if n > 2 else 0)
        self.n_stalled = max(0, min(self.n_stalled, n - 1 if n > 1 else 0))
        self.containers = {f: [] for f in FUNCS}
        self.invocations = {f: [] for f in FUNCS}
        self.datagrams = []        # (emit_us, seq, doc)
        self.reqs = []

    # ---- ids -------------------------------------------------------------
    def hex(self, nbits):
        return f"{self.rng.getrandbits(nbits):0{nbits // 4}x}"

    def seg_id(self):
        return self.hex(64)

    def trace_id(self, us):
        return f"1-{us // 1000000:08x}-{self.hex(96)}"

    def uuid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def aws_req(self):
        return self.hex(128).upper()

    # ---- containers --------------------------------------------------------
    def chance(self, p):
        return p > 0 and self.adv.random() < p

    def acquire(self, fn, l0):
        free = [c for c in self.containers[fn] if c["free_at"] <= l0]
        if free and self.rng.random() >= COLD_P:
            return min(free, key=lambda c: c["free_at"]), False
        day = datetime.datetime.fromtimestamp(l0 // 1000000, datetime.timezone.utc).strftime("%Y/%m/%d")
        c = {"stream": f"{day}/[$LATEST]{self.hex(128)}", "free_at": 0, "last_corr": None, "events": [],
             "skew": 0}
        if fn != F_START and self.chance(self.p_skew):
            c["skew"] = self.adv.randint(50 * MS, 2000 * MS)   # this host's clock runs behind
        self.containers[fn].append(c)
        return c, True

    # ---- one Lambda invocation ---------------------------------------------
    def invoke(self, fn, l0, trace, parent_id, event, body, links=None, streamed=False, fault=None):
        """Simulate one invocation whose AWS::Lambda segment starts at l0.
        body(inv, t) performs the handler's work from t and returns its end.
        event None: the handler logs no event. fault: the function segment's
        cause (a failed attempt). A skewed host reports every time `off`
        early: inv's times stay real, the documents and logs carry them
        shifted (inv["off"])."""
        c, cold = self.acquire(fn, l0)
        inv = {"fn": fn, "rid": self.uuid(), "trace": trace, "lam_id": self.seg_id(), "fn_id": self.seg_id(),
               "inv_id": self.seg_id(), "cold": cold, "container": c, "ops": [], "logs": [],
               "L0": l0, "corr": [], "off": c["skew"], "fault": fault}
        inv["F0"] = l0 + self.rng.randint(1000, 2000)
        inv["init"] = self.rng.randint(300_000, 500_000) if cold else 0
        i0 = inv["I0"] = inv["F0"] + inv["init"]
        inv["logs"].append((i0, f"START RequestId: {inv['rid']} Version: $LATEST\n"))
        if event is not None:
            self.pt(inv, i0, "Lambda invocation event", {"event": event})
        i1 = inv["I1"] = body(inv, i0)
        f1 = inv["F1"] = i1 + 800
        l1 = inv["L1"] = f1 + 400
        dur = (i1 - i0) / 1000
        report = (f"REPORT RequestId: {inv['rid']}\tDuration: {dur:.2f} ms\tBilled Duration: {math.ceil(dur)} ms\t"
                  f"Memory Size: 512 MB\tMax Memory Used: {self.rng.randint(78, 140)} MB\t")
        if cold:
            report += f"Init Duration: {inv['init'] / 1000:.2f} ms\t"
        report += f"\nXRAY TraceId: {trace}\tSegmentId: {inv['fn_id']}\tSampled: true\t\n"
        inv["logs"].append((f1, f"END RequestId: {inv['rid']}\n"))
        inv["logs"].append((l1, report))
        c["free_at"] = l1
        if inv["off"]:
            off = inv["off"]
            inv["logs"] = [(t - off, m) for t, m in inv["logs"]]
            for _, _, d in inv["ops"]:
                d["start_time"] = sec(round(d["start_time"] * 1e6) - off)
                d["end_time"] = sec(round(d["end_time"] * 1e6) - off)
        c["events"].extend(inv["logs"])
        if inv["corr"]:
            c["last_corr"] = inv["corr"][-1]
        self.invocations[fn].append(inv)
        self.emit_lambda(inv, parent_id, links, streamed)
        return inv

    def pt(self, inv, t, message, extra):
        d = {"level": "INFO", "message": message, "timestamp": iso(t), "service": inv["fn"],
             "cold_start": inv["cold"], "function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{inv['fn']}",
             "function_memory_size": "512", "function_name": inv["fn"], "function_request_id": inv["rid"],
             "sampling_rate": 0, "xray_trace_id": inv["trace"]}
        d.update(extra)
        inv["logs"].append((t, dumps(d)))

    def stale_line(self, inv, t, message, nrec):
        """Powertools appendKeys left over: a plain info line, logged before the
        new correlation_id is set, still carries the previous invocation's."""
        prev = inv["container"]["last_corr"]
        if inv["cold"] or prev is None or self.rng.random() >= STALE_P:
            return t
        self.pt(inv, t, message, {"correlation_id": prev, "records": nrec})
        inv["stale"] = prev
        return t + self.rng.randint(200, 900)

    def op(self, inv, name, t0, t1, aws, annotations=None):
        d = {"id": self.seg_id(), "name": name, "start_time": sec(t0), "namespace": "aws",
             "aws": dict({"region": REGION, "request_id": self.aws_req()}, **aws)}
        if annotations:
            d["annotations"] = annotations
        d["end_time"] = sec(t1)
        inv["ops"].append((t0, t1, d))
        return d

    # ---- X-Ray documents ---------------------------------------------------
    def emit(self, emit_us, doc):
        self.datagrams.append((emit_us, len(self.datagrams), doc))

    def emit_lambda(self, inv, parent_id, links, streamed):
        fn = inv["fn"]
        if inv["off"]:   # what the skewed host reports
            inv = dict(inv)
            for k in ("L0", "F0", "I0", "I1", "F1", "L1"):
                inv[k] -= inv["off"]
        sub_init = ({"id": self.seg_id(), "name": "Initialization", "start_time": sec(inv["F0"]),
                     "end_time": sec(inv["I0"])} if inv["cold"] else None)
        overhead = {"id": self.seg_id(), "name": "Overhead", "start_time": sec(inv["I1"]), "end_time": sec(inv["F1"])}
        invocation = {"id": inv["inv_id"], "name": "Invocation", "start_time": sec(inv["I0"])}
        fseg = {"trace_id": inv["trace"], "id": inv["fn_id"], "start_time": sec(inv["F0"]), "name": fn,
                "parent_id": inv["lam_id"], "service": SERVICE,
                "aws": {"xray": XRAY_SDK, "function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}",
                        "resource_names": [fn], "account_id": ACCOUNT},
                "origin": "AWS::Lambda::Function"}
        if streamed:
            def indep(d, parent, t):
                d = dict(d)
                d.update({"type": "subsegment", "parent_id": parent, "trace_id": inv["trace"]})
                self.emit(t, d)
            if sub_init:
                indep(sub_init, inv["fn_id"], inv["I0"])
            for t0, t1, d in inv["ops"]:
                indep(d, inv["inv_id"], t1)
            invocation["end_time"] = sec(inv["I1"])
            indep(invocation, inv["fn_id"], inv["I1"])
            fseg["subsegments"] = [overhead]
        else:
            invocation["subsegments"] = [d for _, _, d in inv["ops"]]
            invocation["end_time"] = sec(inv["I1"])
            fseg["subsegments"] = ([sub_init] if sub_init else []) + [invocation, overhead]
        if inv["fault"]:
            fseg["fault"] = True
            fseg["cause"] = inv["fault"]
        fseg["end_time"] = sec(inv["F1"])
        self.emit(inv["F1"], fseg)
        lseg = {"trace_id": inv["trace"], "id": inv["lam_id"], "start_time": sec(inv["L0"]), "name": fn}
        if parent_id:
            lseg["parent_id"] = parent_id
        lseg.update({"service": SERVICE, "aws": {"xray": XRAY_SDK, "request_id": inv["rid"]},
                     "origin": "AWS::Lambda", "resource_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}"})
        if links:
            lseg["links"] = links
        lseg["end_time"] = sec(inv["L1"])
        self.emit(inv["L1"], lseg)

    # ---- batching -----------------------------------------------------------
    def batches(self, items, lo, hi, cap_max):
        """items: [(ready_us, req)] sorted; a poller takes the oldest ready
        item after a wait in [lo, hi] and whatever else was ready lo before."""
        out, i = [], 0
        while i < len(items):
            l0 = items[i][0] + self.rng.randint(lo, hi)
            cap = self.rng.randint(1, cap_max)
            b, j = [items[i][1]], i + 1
            while j < len(items) and len(b) < cap and items[j][0] <= l0 - lo:
                b.append(items[j][1])
                j += 1
            out.append((l0, b))
            i = j
        out.sort(key=lambda x: x[0])
        return out

    # ---- the pipeline -------------------------------------------------------
    def run(self):
        rng = self.rng
        t = T0_US + rng.randint(20_000, 80_000)
        for i in range(self.n):
            if i:
                t += rng.randint(2 * MS, 40 * MS) if rng.random() < 0.3 else int(rng.expovariate(1 / 300_000)) + MS
            self.reqs.append({"i": i, "api_start": t, "apigw": self.uuid(), "order": f"p-{i}"})

        # API Gateway -> start-payment (synchronous)
        for r in self.reqs:
            r["trace_api"] = self.trace_id(r["api_start"])
            r["invoke_id"] = self.seg_id()
            event = {"resource": "/orders", "path": "/orders", "httpMethod": "POST",
                     "headers": {"X-Amzn-Trace-Id": f"Root={r['trace_api']}"},
                     "requestContext": {"requestId": r["apigw"], "stage": "prod", "apiId": REST_API,
                                        "requestTimeEpoch": r["api_start"] // 1000},
                     "body": dumps({"item": "book", "qty": 1 + r["i"] % 3})}

            def body(inv, t, r=r):
                a = t + rng.randint(4 * MS, 10 * MS)
                b = a + rng.randint(8 * MS, 18 * MS)
                self.op(inv, "DynamoDB", a, b, {"operation": "GetItem", "table_name": "accounts"})
                c = b + MS
                d = c + rng.randint(10 * MS, 22 * MS)
                r["message_id"] = self.uuid()
                s = self.op(inv, "SQS", c, d, {"operation": "SendMessage",
                                                "queue_url": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{QUEUE}",
                                                "message_id": r["message_id"]})
                r["send_id"], r["send_end"] = s["id"], d
                self.pt(inv, d, "payment started", {"correlation_id": r["apigw"], "orderId": r["order"]})
                inv["corr"].append(r["apigw"])
                return d + 2 * MS

            inv = self.invoke(F_START, r["api_start"] + 4 * MS, r["trace_api"], r["invoke_id"], event, body)
            r["start_inv"] = inv
            r["api_end"] = inv["L1"] + 2 * MS
            api = {"trace_id": r["trace_api"], "id": self.seg_id(), "start_time": sec(r["api_start"]),
                   "name": API_NAME, "service": SERVICE,
                   "aws": {"xray": XRAY_SDK, "api_gateway": {"account_id": ACCOUNT, "rest_api_id": REST_API,
                                                             "stage": "prod", "request_id": r["apigw"]}},
                   "origin": "AWS::ApiGateway::Stage",
                   "http": {"request": {"method": "POST",
                                        "url": f"https://{REST_API}.execute-api.{REGION}.amazonaws.com/live/payments"},
                            "response": {"status": 202}},
                   "subsegments": [{"id": r["invoke_id"], "name": "Lambda", "start_time": sec(inv["L0"] - MS),
                                    "namespace": "aws",
                                    "aws": {"function_name": F_START, "region": REGION, "operation": "Invoke",
                                            "resource_names": [F_START]},
                                    "end_time": sec(inv["L1"])}],
                   "end_time": sec(r["api_end"])}
            self.emit(r["api_end"], api)

        # SQS -> charge-card
        msgs = sorted(((r["send_end"], r) for r in self.reqs), key=lambda x: (x[0], x[1]["i"]))
        for l0, batch in self.batches(msgs, 20 * MS, 800 * MS, 10):
            trace = self.trace_id(l0)

            def records_of(l0, count):
                records = []
                for r in batch:
                    body = dumps({"orderId": r["order"], "correlation_id": r["apigw"]})
                    records.append({"messageId": r["message_id"], "receiptHandle": "AQEB" + self.hex(160),
                                    "body": body,
                                    "attributes": {"ApproximateReceiveCount": str(count),
                                                   "AWSTraceHeader": f"Root={r['trace_api']};Parent={r['send_id']};"
                                                                     f"Sampled=1;Lineage=1:{self.hex(32)}:0",
                                                   "SentTimestamp": str(ms(r["send_end"])),
                                                   "SenderId": "AROA" + self.hex(64).upper(),
                                                   "ApproximateFirstReceiveTimestamp": str(ms(l0))},
                                    "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
                                    "eventSource": "aws:sqs",
                                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{QUEUE}", "awsRegion": REGION})
                return records
            records = records_of(l0, 1)
            links = None
            link_only = self.chance(self.p_link_only)
            if rng.random() < LINKS_P or link_only:
                links = [{"trace_id": r["trace_api"], "id": r["send_id"],
                          "attributes": {"aws.xray.reserved.reference_type": "parent"}} for r in batch]
            for r in batch:
                r["failed"] = []
            if self.chance(self.p_redeliver):
                # the first attempt: the first record's PutItem is throttled,
                # the handler gives up and the function faults
                def failing(inv, t, batch=batch):
                    r = batch[0]
                    t += MS + self.adv.randint(2 * MS, 6 * MS)
                    e = t + self.adv.randint(8 * MS, 17 * MS)
                    d = self.op(inv, "DynamoDB", t, e, {"operation": "PutItem", "table_name": TABLE},
                                {"correlation_id": r["apigw"]})
                    d.update({"error": True, "throttle": True, "http": {"response": {"status": 400}},
                              "cause": {"working_directory": "/var/task", "exceptions": [
                                  {"id": self.hex(64), "remote": True,
                                   "type": "ProvisionedThroughputExceededException",
                                   "message": "The level of configured provisioned throughput for the "
                                              "table was exceeded."}]}})
                    self.pt(inv, e, "charge failed", {"level": "ERROR", "correlation_id": r["apigw"],
                                                      "orderId": r["order"]})
                    inv["corr"].append(r["apigw"])
                    return e + 2 * MS
                fault = {"working_directory": "/var/task",
                         "exceptions": [{"id": self.hex(64), "type": "Error", "message": "batch failed"}]}
                inv = self.invoke(F_CHARGE, l0, trace, None, None if link_only else {"Records": records},
                                  failing, links, streamed=True, fault=fault)
                for r in batch:
                    r["failed"].append(inv)
                l0 = inv["L1"] + 30_000 * MS      # the visibility timeout
                trace = self.trace_id(l0)
                records = records_of(l0, 2)

            def body(inv, t, batch=batch):
                t = self.stale_line(inv, t + MS, "charging batch", len(batch))
                t += rng.randint(2 * MS, 6 * MS)
                for r in batch:
                    e = t + rng.randint(8 * MS, 17 * MS)
                    d = self.op(inv, "DynamoDB", t, e, {"operation": "PutItem", "table_name": TABLE},
                                {"correlation_id": r["apigw"]})
                    r["put_id"], r["put_end"] = d["id"], e
                    self.pt(inv, e, "payment charged", {"correlation_id": r["apigw"], "orderId": r["order"]})
                    inv["corr"].append(r["apigw"])
                    t = e + rng.randint(2 * MS, 10 * MS)
                return t

            inv = self.invoke(F_CHARGE, l0, trace, None, None if link_only else {"Records": records},
                              body, links, streamed=True)
            for r in batch:
                r["charge_inv"] = inv
                r["batch_size"] = len(batch)

        # DynamoDB Streams -> record-ledger (the last n_stalled writes are never consumed)
        writes = sorted(((r["put_end"], r) for r in self.reqs), key=lambda x: (x[0], x[1]["i"]))
        seq = DDB_SEQ0 + rng.randint(1000, 5000)
        for _, r in writes:
            r["ddb_seq"] = str(seq)
            seq += rng.randint(300, 2500)
        consumed = writes[:len(writes) - self.n_stalled]
        for r in self.reqs:
            r["stalled"] = True
        for _, r in consumed:
            r["stalled"] = False
        for l0, batch in self.batches(consumed, 200 * MS, 1500 * MS, self.k):
            trace = self.trace_id(l0)
            records = [{"eventID": self.hex(128), "eventName": "INSERT", "eventVersion": "1.1",
                        "eventSource": "aws:dynamodb", "awsRegion": REGION,
                        "dynamodb": {"ApproximateCreationDateTime": r["put_end"] // 1000000,
                                     "Keys": {"orderId": {"S": r["order"]}},
                                     "NewImage": {"orderId": {"S": r["order"]}, "correlation_id": {"S": r["apigw"]},
                                                  "status": {"S": "NEW"}},
                                     "SequenceNumber": r["ddb_seq"], "SizeBytes": 120, "StreamViewType": "NEW_IMAGE"},
                        "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}/stream/2026-11-01T00:00:00.000"}
                       for r in batch]

            def body(inv, t, batch=batch):
                t = self.stale_line(inv, t + MS, "ledger batch", len(batch))
                t += rng.randint(3 * MS, 10 * MS)
                for r in batch:
                    e = t + rng.randint(10 * MS, 22 * MS)
                    d = self.op(inv, "Kinesis", t, e, {"operation": "PutRecord"})
                    r["putrec_id"], r["putrec_end"] = d["id"], e
                    self.pt(inv, e, "ledger written", {"correlation_id": r["apigw"], "orderId": r["order"]})
                    inv["corr"].append(r["apigw"])
                    t = e + rng.randint(1 * MS, 6 * MS)
                return t

            inv = self.invoke(F_LEDGER, l0, trace, None, {"Records": records}, body)
            for r in batch:
                r["ledger_inv"] = inv

        # Kinesis -> send-receipt
        puts = sorted(((r["putrec_end"], r) for _, r in consumed), key=lambda x: (x[0], x[1]["i"]))
        seq = KIN_SEQ0 + rng.randint(5000, 20000)
        for _, r in puts:
            r["kin_seq"] = str(seq)
            seq += rng.randint(1000, 120000)
        for l0, batch in self.batches(puts, 200 * MS, 1500 * MS, self.k):
            trace = self.trace_id(l0)
            records = [{"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": r["order"],
                                    "sequenceNumber": r["kin_seq"],
                                    "data": base64.b64encode(dumps({"orderId": r["order"],
                                                                    "correlation_id": r["apigw"]}).encode()).decode(),
                                    "approximateArrivalTimestamp": ms(r["putrec_end"]) / 1000},
                        "eventSource": "aws:kinesis", "eventVersion": "1.0",
                        "eventID": f"shardId-000000000000:{r['kin_seq']}", "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/{F_RECEIPT}", "awsRegion": REGION,
                        "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STREAM}"} for r in batch]

            def body(inv, t, batch=batch):
                t = self.stale_line(inv, t + MS, "sending receipts", len(batch))
                t += rng.randint(2 * MS, 4 * MS)
                for r in batch:
                    e = t + rng.randint(15 * MS, 35 * MS)
                    self.op(inv, "SNS", t, e, {"operation": "Publish",
                                                "topic_arn": f"arn:aws:sns:{REGION}:{ACCOUNT}:{TOPIC}"})
                    self.pt(inv, e, "receipt sent", {"correlation_id": r["apigw"], "orderId": r["order"]})
                    inv["corr"].append(r["apigw"])
                    t = e + rng.randint(1 * MS, 4 * MS)
                return t

            inv = self.invoke(F_RECEIPT, l0, trace, None, {"Records": records}, body, streamed=True)
            for r in batch:
                r["receipt_inv"] = inv

    # ---- outputs ------------------------------------------------------------
    def write_segments(self, path):
        if self.order == "time":
            grams = sorted(self.datagrams, key=lambda x: (x[0], x[1]))
        elif self.order == "shuffled":   # arrival in any order
            grams = list(self.datagrams)
            self.adv.shuffle(grams)
        else:   # the sample's: stage by stage, each invocation's documents as the SDK sends them
            grams = self.datagrams
        with open(path, "w") as f:
            for _, _, doc in grams:
                f.write('{"format":"json","version":1}\n' + dumps(doc) + "\n")

    def write_logs(self, out):
        msgs = []
        counter = 0
        for fn in FUNCS:
            for c in self.containers[fn]:
                evs = c["events"]
                for k in range(0, len(evs), 25):
                    chunk = []
                    for t, m in evs[k:k + 25]:
                        counter += 1
                        chunk.append({"id": f"{ms(t):013d}{counter:043d}", "timestamp": ms(t), "message": m})
                    msgs.append({"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": f"/aws/lambda/{fn}",
                                 "logStream": c["stream"], "subscriptionFilters": ["hoptrace"], "logEvents": chunk})
        if self.order == "shuffled":
            self.adv.shuffle(msgs)
        half = (len(msgs) + 1) // 2
        with open(os.path.join(out, "logs-cwl.ndjson"), "w") as f:
            for m in msgs[:half]:
                f.write(dumps(m) + "\n")
        last = max(e["timestamp"] for m in msgs for e in m["logEvents"])
        recs = []
        for j, m in enumerate(msgs[half:]):
            blob = gzip.compress(dumps(m).encode(), compresslevel=6, mtime=0)
            recs.append({"SequenceNumber": str(LOGS_SEQ0 + j), "ApproximateArrivalTimestamp": last / 1000,
                         "Data": base64.b64encode(blob).decode(), "PartitionKey": m["logStream"]})
        with open(os.path.join(out, "logs-kinesis.json"), "w") as f:
            f.write(dumps({"Records": recs, "NextShardIterator": "AAAA", "MillisBehindLatest": 0}))

    def truth(self):
        """Exact truth as the documents report it: a skewed host's times are
        shifted by its offset (inv["off"]), the AWS services' are not."""
        def obs(inv, k):
            return inv[k] - inv["off"]
        out, extra = [], []
        for r in self.reqs:
            si, ci = r["start_inv"], r["charge_inv"]
            nodes = [(r["api_start"], r["api_end"], API_NAME), (obs(si, "L0"), obs(si, "L1"), F_START),
                     (obs(ci, "L0"), obs(ci, "L1"), F_CHARGE)]
            failed = [(obs(f, "L0"), obs(f, "L1"), F_CHARGE) for f in r["failed"]]
            hops = [{"via": "sqs", "resource": QUEUE, "wait_ms": (n[0] - r["send_end"]) / 1000}
                    for n in failed + [nodes[2]]]
            pairs = [[r["send_id"], f["lam_id"]] for f in r["failed"] + [ci]]
            skewed = [obs(f, "L0") < r["send_end"] for f in r["failed"] + [ci]]
            li = ri = None
            if not r["stalled"]:
                li, ri = r["ledger_inv"], r["receipt_inv"]
                put_end = r["put_end"] - ci["off"]
                putrec_end = r["putrec_end"] - li["off"]
                nodes += [(obs(li, "L0"), obs(li, "L1"), F_LEDGER), (obs(ri, "L0"), obs(ri, "L1"), F_RECEIPT)]
                hops += [{"via": "dynamodb", "resource": TABLE, "wait_ms": (obs(li, "L0") - put_end) / 1000},
                         {"via": "kinesis", "resource": STREAM, "wait_ms": (obs(ri, "L0") - putrec_end) / 1000}]
                pairs += [[r["put_id"], li["lam_id"]], [r["putrec_id"], ri["lam_id"]]]
                skewed += [obs(li, "L0") < put_end, obs(ri, "L0") < putrec_end]
            allnodes = nodes + failed
            start = min(n[0] for n in allnodes)
            end = max(n[1] for n in allnodes)
            sink = max(nodes, key=lambda n: n[1])
            path = [n[2] for n in nodes[:nodes.index(sink) + 1]]
            skew = any(skewed)
            if not skew:
                assert start == r["api_start"]
                assert path[-1] == (F_CHARGE if r["stalled"] else F_RECEIPT), (r["i"], path)
            t = {"i": r["i"], "apigw_request_id": r["apigw"], "correlation_id": r["apigw"],
                 "create_request_id": si["rid"], "process_request_id": ci["rid"], "batch_size": r["batch_size"],
                 "message_id": r["message_id"], "start_us": start}
            tids = [r["trace_api"], ci["trace"]]
            if li is not None:
                nl, nr = len(li["corr"]), len(ri["corr"])
                if nl == 1:
                    t["index_request_id"] = li["rid"]
                t["ddb_sequence"] = r["ddb_seq"]
                if nr == 1:
                    t["notify_request_id"] = ri["rid"]
                t["kinesis_sequence"] = r["kin_seq"]
                tids += ([li["trace"]] if nl == 1 else []) + ([ri["trace"]] if nr == 1 else [])
                extra.append({"i": r["i"], "apigw_request_id": r["apigw"],
                              "ledger_batch_size": nl, "receipt_batch_size": nr,
                              "lookups": [
                                  {"kind": "lambda", "what": "index_request_id", "id": li["rid"], "want": nl},
                                  {"kind": "xray", "what": "ledger_trace_id", "id": li["trace"], "want": nl},
                                  {"kind": "ddb", "what": "ddb_sequence", "id": r["ddb_seq"], "want": 1},
                                  {"kind": "lambda", "what": "notify_request_id", "id": ri["rid"], "want": nr},
                                  {"kind": "xray", "what": "receipt_trace_id", "id": ri["trace"], "want": nr},
                                  {"kind": "kinesis", "what": "kinesis_sequence", "id": r["kin_seq"], "want": 1}]})
            t.update({"end_us": end, "duration_ms": (end - start) / 1000, "hops": hops, "path": path,
                      "stalled": r["stalled"], "trace_ids": tids})
            # the exact extras check_hard.py holds hoptrace to
            t.update({"root_start_us": r["api_start"], "skew": skew,
                      "skew_pairs": [p for p, k in zip(pairs, skewed) if k],
                      "failed_request_ids": [f["rid"] for f in r["failed"]],
                      "off_path": [x for f in r["failed"] for x in
                                   [f["lam_id"], f["fn_id"], f["inv_id"]] + [d["id"] for _, _, d in f["ops"]]]})
            if r["stalled"]:
                t["pending"] = [{"via": "dynamodb", "resource": TABLE, "from": r["put_id"]}]
            out.append(t)
        last_us = max(d[0] for d in self.datagrams)
        stall = {"stage_via": "dynamodb", "resource": TABLE, "producer": F_CHARGE, "consumer": F_LEDGER,
                 "now_s": last_us // 1000000 + 900, "pending": self.n_stalled, "threshold": "300s"}
        return {"requests": out, "stages": {}, "stall": stall}, extra


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, required=True, help="number of API requests")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--stream-batch", type=int, default=1,
                    help="max records per record-ledger / send-receipt invocation (default 1)")
    ap.add_argument("--stalled", type=int, default=None,
                    help="requests never consumed by record-ledger (default max(2, N//25))")
    ap.add_argument("--order", choices=["stage", "time", "shuffled"], default="stage",
                    help="segments.ndjson order: stage by stage as the sample (default), by emission "
                         "time, or shuffled (log messages too)")
    ap.add_argument("--link-only", type=float, default=0.0, metavar="P",
                    help="share of charge-card batches known only by X-Ray links (no logged event)")
    ap.add_argument("--skew", type=float, default=0.0, metavar="P",
                    help="share of consumer containers on a host whose clock runs 50 ms - 2 s behind")
    ap.add_argument("--redeliver", type=float, default=0.0, metavar="P",
                    help="share of charge-card batches that fail first and are redelivered")
    a = ap.parse_args(argv)
    if a.requests < 1 or a.stream_batch < 1:
        ap.error("--requests and --stream-batch must be >= 1")
    for p in (a.link_only, a.skew, a.redeliver):
        if not 0 <= p <= 1:
            ap.error("--link-only, --skew and --redeliver take a share between 0 and 1")
    g = Gen(a.requests, a.seed, a.stream_batch, a.stalled, a.order, a.link_only, a.skew, a.redeliver)
    g.run()
    os.makedirs(a.out, exist_ok=True)
    g.write_segments(os.path.join(a.out, "segments.ndjson"))
    g.write_logs(a.out)
    truth, extra = g.truth()
    with open(os.path.join(a.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
        f.write("\n")
    xp = os.path.join(a.out, "truth-extra.json")
    if a.stream_batch > 1:
        with open(xp, "w") as f:
            json.dump({"stream_batch": a.stream_batch,
                       "note": "every stream-consumer id per request with the number of requests "
                               "`hoptrace trace ID --format json` must return",
                       "requests": extra}, f, indent=1)
            f.write("\n")
    elif os.path.exists(xp):
        os.remove(xp)
    s = truth["requests"]
    print(f"{len(s)} requests ({sum(x['stalled'] for x in s)} stalled), "
          f"{len(g.datagrams)} segment documents, "
          f"{sum(len(v) for v in g.invocations.values())} invocations -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
