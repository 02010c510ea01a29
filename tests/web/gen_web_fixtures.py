#!/usr/bin/env python3
"""Writes the web view's test fixtures (X-Ray daemon datagrams, the shape of
fixtures/ and the payments sample): deterministic, stdlib only. Run it again
after a change; the committed files are exactly what it writes.

  html-name/segments.ndjson  one request through API Gateway, a function
      and an SQS hop whose service and span names are HTML
      (`<img src=x onerror=alert(1)>` and friends): the page must show them
      as text and inject no element.
  wide-300/segments.ndjson   one request of 305 spans: a function sends 20
      SQS messages, 20 consumer invocations make 11 DynamoDB calls each.

usage: gen_web_fixtures.py [--check] [OUT_DIR]
  (OUT_DIR: default the folder of this script; --check compares instead of
  writing)
"""
import json
import os
import random
import sys
import uuid

HEADER = '{"format":"json","version":1}'
SDK = {"xray": {"sdk": "X-Ray for Node.js", "sdk_version": "3.12.0",
                "package": "aws-xray-sdk-core"}}
SERVICE = {"runtime": "node", "runtime_version": "v20.20.2",
           "version": "unknown", "name": "unknown"}
ACCOUNT = "123456789012"
T0 = 1797000000.0  # 2026-12-10

# The names the browser test looks for, as text.
HTML_SERVICE = "<img src=x onerror=alert(1)>"
HTML_CONSUMER = "process-<b>order</b>\"'&amp;"
HTML_CALL = "<svg onload=alert(3)>"


class Gen:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.lines = []

    def sid(self):
        return "%016x" % self.rng.getrandbits(64)

    def tid(self, t):
        return "1-%08x-%024x" % (int(t), self.rng.getrandbits(96))

    def uid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def emit(self, doc):
        self.lines.append(HEADER)
        self.lines.append(json.dumps(doc, separators=(",", ":")))

    def write(self, path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def us(t):
    return round(t, 6)


def api_request(g, t, fn, body_start):
    """API Gateway stage -> Lambda Invoke -> AWS::Lambda segment of fn.
    Returns (trace id, AWS::Lambda segment id, its request id)."""
    trace = g.tid(t)
    stage, call, lam = g.sid(), g.sid(), g.sid()
    rid = g.uid()
    g.emit({"trace_id": trace, "id": stage, "start_time": us(t),
            "name": "shop-api/prod", "service": SERVICE,
            "aws": dict(SDK, api_gateway={"account_id": ACCOUNT,
                                          "rest_api_id": "w3b7e5t0ab",
                                          "stage": "prod",
                                          "request_id": g.uid()}),
            "origin": "AWS::ApiGateway::Stage",
            "http": {"request": {"method": "POST",
                                 "url": "https://w3b7e5t0ab.execute-api."
                                        "us-east-1.amazonaws.com/prod/orders"},
                     "response": {"status": 202}},
            "subsegments": [{"id": call, "name": "Lambda",
                             "start_time": us(t + 0.002), "namespace": "aws",
                             "aws": {"function_name": fn,
                                     "region": "us-east-1",
                                     "operation": "Invoke",
                                     "resource_names": [fn]},
                             "end_time": us(body_start + 0.002)}],
            "end_time": us(body_start + 0.004)})
    g.emit({"trace_id": trace, "id": lam, "start_time": us(t + 0.003),
            "name": fn, "parent_id": call, "service": SERVICE,
            "aws": dict(SDK, request_id=rid), "origin": "AWS::Lambda",
            "resource_arn": "arn:aws:lambda:us-east-1:%s:function:%s"
                            % (ACCOUNT, fn),
            "end_time": us(body_start + 0.001)})
    return trace, lam, rid


def function_segment(g, trace, parent, fn, t, calls, end):
    """AWS::Lambda::Function segment with Invocation holding `calls`
    (subsegment dicts) and Overhead."""
    g.emit({"trace_id": trace, "id": g.sid(), "start_time": us(t),
            "name": fn, "parent_id": parent, "service": SERVICE,
            "aws": dict(SDK, function_arn="arn:aws:lambda:us-east-1:%s:"
                                          "function:%s" % (ACCOUNT, fn),
                        resource_names=[fn], account_id=ACCOUNT),
            "origin": "AWS::Lambda::Function",
            "subsegments": [{"id": g.sid(), "name": "Invocation",
                             "start_time": us(t), "subsegments": calls,
                             "end_time": us(end - 0.001)},
                            {"id": g.sid(), "name": "Overhead",
                             "start_time": us(end - 0.001),
                             "end_time": us(end)}],
            "end_time": us(end)})


def sqs_send(g, t, queue):
    return {"id": g.sid(), "name": "SQS", "start_time": us(t),
            "namespace": "aws",
            "aws": {"region": "us-east-1", "request_id": g.uid(),
                    "operation": "SendMessage",
                    "queue_url": "https://sqs.us-east-1.amazonaws.com/%s/%s"
                                 % (ACCOUNT, queue),
                    "message_id": g.uid()},
            "end_time": us(t + 0.012)}


def consumer(g, t, fn, producer_trace, producer_call, calls_fn):
    """An SQS-triggered AWS::Lambda segment linked to the send (X-Ray
    link), its function segment with the calls calls_fn(t) returns."""
    trace = g.tid(t)
    lam = g.sid()
    calls, end = calls_fn(t + 0.002)
    g.emit({"trace_id": trace, "id": lam, "start_time": us(t), "name": fn,
            "service": SERVICE, "aws": dict(SDK, request_id=g.uid()),
            "origin": "AWS::Lambda",
            "resource_arn": "arn:aws:lambda:us-east-1:%s:function:%s"
                            % (ACCOUNT, fn),
            "links": [{"trace_id": producer_trace, "id": producer_call,
                       "attributes": {"aws.xray.reserved.reference_type":
                                      "parent"}}],
            "end_time": us(end + 0.001)})
    function_segment(g, trace, lam, fn, t + 0.001, calls, end)


def ddb(g, t, op, table):
    return {"id": g.sid(), "name": "DynamoDB", "start_time": us(t),
            "namespace": "aws",
            "aws": {"region": "us-east-1", "request_id": g.uid(),
                    "operation": op, "table_name": table},
            "end_time": us(t + 0.009)}


def html_name(out):
    g = Gen(1301)
    t = T0
    body = t + 0.005
    send = sqs_send(g, body + 0.020, "orders-queue")
    odd = {"id": g.sid(), "name": HTML_CALL, "start_time": us(body + 0.004),
           "end_time": us(body + 0.010)}
    trace, lam, _ = api_request(g, t, HTML_SERVICE, body + 0.040)
    function_segment(g, trace, lam, HTML_SERVICE, body, [odd, send],
                     body + 0.036)

    def work(t1):
        return [ddb(g, t1, "PutItem", "orders")], t1 + 0.015

    consumer(g, body + 0.032 + 0.180, HTML_CONSUMER, trace, send["id"], work)
    g.write(os.path.join(out, "html-name", "segments.ndjson"))


def wide_300(out):
    g = Gen(1302)
    t = T0 + 60
    body = t + 0.005
    sends = [sqs_send(g, body + 0.003 + i * 0.014, "work-queue")
             for i in range(20)]
    end = body + 0.003 + 20 * 0.014 + 0.002
    trace, lam, _ = api_request(g, t, "fan-out", end + 0.002)
    function_segment(g, trace, lam, "fan-out", body, sends, end)
    for i, s in enumerate(sends):
        def work(t1):
            calls = [ddb(g, t1 + k * 0.011, "UpdateItem", "items")
                     for k in range(11)]
            return calls, t1 + 11 * 0.011 + 0.001
        wait = 0.040 + g.rng.randrange(0, 400) / 1000.0
        consumer(g, s["end_time"] + wait, "worker", trace, s["id"], work)
    g.write(os.path.join(out, "wide-300", "segments.ndjson"))


def main():
    args = sys.argv[1:]
    check = bool(args) and args[0] == "--check"
    if check:
        args = args[1:]
    out = args[0] if args else os.path.dirname(os.path.abspath(__file__))
    if not check:
        html_name(os.path.join(out, "fixtures"))
        wide_300(os.path.join(out, "fixtures"))
        return 0
    # --check: write to a scratch folder, compare with the committed files.
    import filecmp
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        html_name(os.path.join(tmp, "fixtures"))
        wide_300(os.path.join(tmp, "fixtures"))
        bad = 0
        for d in ("html-name", "wide-300"):
            a = os.path.join(tmp, "fixtures", d, "segments.ndjson")
            b = os.path.join(out, "fixtures", d, "segments.ndjson")
            if not os.path.exists(b) or not filecmp.cmp(a, b, shallow=False):
                print("FAIL: %s differs from what gen_web_fixtures.py writes "
                      "(run it again)" % b)
                bad += 1
        if not bad:
            print("web fixtures: as generated")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
