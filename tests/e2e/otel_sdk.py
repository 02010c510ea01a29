#!/usr/bin/env python3
"""The real OpenTelemetry JS SDK into `hoptrace ingest --otlp`, over an SQS hop.

Part of the e2e tier (tests/e2e/). For each OTLP/HTTP encoding (JSON; and
protobuf with gzip bodies): start `hoptrace ingest --otlp 127.0.0.1:0` on a
fresh store and an SQS stand-in (AWS JSON protocol: SendMessage,
ReceiveMessage, the MD5s the SDK checks) on free ports; run
tests/e2e/otel/flow.js twice with the OpenTelemetry JS SDK, its OTLP
exporter and its aws-sdk instrumentation around @aws-sdk/client-sqs:
`produce` (2 requests, each a SERVER span that sends one message: trace A1,
A2) then `consume` (one poll that receives both messages in one batch and
handles each in a CONSUMER process span linked to its producer: trace B).
Then, from the spans the SDK itself recorded (printed by flow.js):
- `trace MESSAGE_ID --format json` is exactly one request, rooted at its
  producer's root span, with one SQS hop (resource the queue) from the
  SendMessage span to the poll whose wait is exact: the poll's start minus
  the SendMessage span's end, each rounded to the microsecond;
- the producer's trace id (OTel hex and X-Ray form) gives the same
  request; the consumer's trace id gives both requests of its batch;
- `trace MESSAGE_ID --format otlp` POSTed to a fresh `ingest --otlp`
  answers the same (spans, hops and their waits, duration).
Skips (exit 77) when node or the npm packages are missing (scripts/setup.sh
installs them into .deps/).

usage: otel_sdk.py HOPTRACE
"""
import hashlib
import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPS = os.path.join(ROOT, ".deps", "node_modules")
FLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "otel", "flow.js")
NEEDED = ["@opentelemetry/api", "@opentelemetry/sdk-trace-base",
          "@opentelemetry/sdk-trace-node", "@opentelemetry/resources",
          "@opentelemetry/exporter-trace-otlp-http",
          "@opentelemetry/exporter-trace-otlp-proto",
          "@opentelemetry/instrumentation",
          "@opentelemetry/instrumentation-aws-sdk", "@aws-sdk/client-sqs"]
QUEUE = "orders-queue"


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


# ---- the SQS stand-in --------------------------------------------------------

class Queue:
    def __init__(self):
        self.lock = threading.Lock()
        self.messages = []
        self.calls = []


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def make_handler(q):
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def reply(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            req = json.loads(self.rfile.read(n) or b"{}")
            op = (self.headers.get("X-Amz-Target") or "").split(".")[-1]
            with q.lock:
                q.calls.append(op)
                if op == "SendMessage":
                    mid = str(uuid.uuid4())
                    q.messages.append({
                        "MessageId": mid,
                        "ReceiptHandle": "rh-" + mid,
                        "MD5OfBody": md5(req["MessageBody"]),
                        "Body": req["MessageBody"],
                        "MessageAttributes": req.get("MessageAttributes") or {},
                        "Attributes": {"SentTimestamp": str(int(time.time() * 1000))},
                    })
                    return self.reply(200, {"MessageId": mid,
                                            "MD5OfMessageBody": md5(req["MessageBody"])})
                if op == "ReceiveMessage":
                    k = int(req.get("MaxNumberOfMessages") or 1)
                    out, q.messages = q.messages[:k], q.messages[k:]
                    return self.reply(200, {"Messages": out})
            self.reply(400, {"__type": "com.amazonaws.sqs#InvalidAction",
                             "message": "the stand-in knows SendMessage and ReceiveMessage"})
    return H


# ---- hoptrace ----------------------------------------------------------------

def start_ingest(hop, db):
    p = subprocess.Popen([hop, "--db", db, "ingest", "--otlp", "127.0.0.1:0"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    line = p.stderr.readline().decode()
    if "listening on http://" not in line:
        p.kill()
        raise RuntimeError("ingest --otlp did not start: %r" % line)
    addr = line.split("http://")[1].split("/")[0]
    return p, addr


def stop_ingest(p):
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return p.returncode, err.decode(errors="replace")


def trace(hop, db, ident):
    p = subprocess.run([hop, "--db", db, "trace", ident, "--format", "json"],
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace").strip()
    return json.loads(p.stdout)["requests"], None


def us(ns):
    return (int(ns) + 500) // 1000


def xray(tid):
    return "1-%s-%s" % (tid[:8], tid[8:])


def run_flow(side, env):
    p = subprocess.run(["node", FLOW, side], env=env, capture_output=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("flow.js %s exit %s: %s" % (side, p.returncode,
                                                      p.stderr.decode(errors="replace")[-1500:]))
    return [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]


def one_encoding(hop, encoding, gzip):
    fails = []
    tmp = tempfile.mkdtemp(prefix="ht-otel-sdk-")
    q = Queue()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(q))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    ing = None
    try:
        db = os.path.join(tmp, "db")
        ing, addr = start_ingest(hop, db)
        env = dict(os.environ, NODE_PATH=DEPS,
                   HT_OTLP_URL="http://%s/v1/traces" % addr,
                   HT_OTLP_ENCODING=encoding, HT_OTLP_GZIP="1" if gzip else "0",
                   HT_SQS_ENDPOINT="http://127.0.0.1:%d" % srv.server_address[1],
                   HT_SQS_QUEUE=QUEUE, HT_REQUESTS="2",
                   OTEL_LOG_LEVEL="none")
        prod = run_flow("produce", env)
        cons = run_flow("consume", env)
        rc, err = stop_ingest(ing)
        ing = None
        if rc != 0:
            fails.append("ingest --otlp exit %s: %s" % (rc, err[-400:]))
        if "spans rejected 0" not in err or "bad 0" not in err:
            fails.append("ingest --otlp summary: %s" % err.strip()[-400:])

        # the JS API's SpanKind: PRODUCER 3, CONSUMER 4 (OTLP's minus one)
        sends = [s for s in prod if s["kind"] == 3]
        roots = {s["traceId"]: s for s in prod if not s["parentSpanId"]}
        poll = [s for s in cons if not s["parentSpanId"]]
        process = [s for s in cons if s["kind"] == 4 and s["links"]]
        if len(sends) != 2 or len(poll) != 1 or len(process) != 2:
            fails.append("the SDK recorded %d sends, %d polls, %d process spans "
                         "(expected 2, 1, 2); calls %s" % (len(sends), len(poll), len(process), q.calls))
            return fails
        poll = poll[0]
        for s in sends:
            mid = s["attributes"].get("messaging.message_id") or \
                s["attributes"].get("messaging.message.id")
            if not mid:
                fails.append("send span without a message id: %s" % s["attributes"])
                continue
            want_wait = (us(poll["start"]) - us(s["end"])) / 1000.0
            root = roots[s["traceId"]]
            reqs, e = trace(hop, db, mid)
            if reqs is None:
                fails.append("%s: trace %s: %s" % (encoding, mid, e))
                continue
            if len(reqs) != 1:
                fails.append("%s: trace %s: %d requests, expected 1" % (encoding, mid, len(reqs)))
                continue
            r = reqs[0]
            if r["root"] != root["spanId"]:
                fails.append("%s: %s: root %s, expected %s" % (encoding, mid, r["root"], root["spanId"]))
            hops = [h for h in r["hops"] if h["via"] == "sqs"]
            if len(hops) != 1:
                fails.append("%s: %s: sqs hops %s" % (encoding, mid, r["hops"]))
                continue
            h = hops[0]
            if h["from"] != s["spanId"] or h["to"] != poll["spanId"] or h["resource"] != QUEUE:
                fails.append("%s: %s: hop %s, expected %s -> %s on %s" % (
                    encoding, mid, h, s["spanId"], poll["spanId"], QUEUE))
            if abs(h["wait_ms"] - want_wait) > 0.0005:
                fails.append("%s: %s: wait %.3f ms, the SDK's spans say %.3f" % (
                    encoding, mid, h["wait_ms"], want_wait))
            if sorted(r["trace_ids"]) != sorted([xray(s["traceId"]), xray(poll["traceId"])]):
                fails.append("%s: %s: trace ids %s" % (encoding, mid, r["trace_ids"]))
            wait_on_path = [c for c in r["critical_path"] if c["kind"] == "wait"]
            if not wait_on_path or abs(wait_on_path[0]["duration_ms"] - want_wait) > 0.0005:
                fails.append("%s: %s: critical path wait %s" % (encoding, mid, wait_on_path))
            for ident in (s["traceId"], xray(s["traceId"])):
                rr, e = trace(hop, db, ident)
                if rr is None or [x["root"] for x in rr] != [root["spanId"]]:
                    fails.append("%s: trace %s: %s" % (encoding, ident,
                                                       e or [x["root"] for x in rr]))
        # trace --format otlp, POSTed back to a fresh ingest --otlp, gives
        # the same answer
        mid0 = sends[0]["attributes"].get("messaging.message_id") or \
            sends[0]["attributes"].get("messaging.message.id")
        p = subprocess.run([hop, "--db", db, "trace", mid0, "--format", "otlp"],
                           capture_output=True, timeout=60)
        db2 = os.path.join(tmp, "db2")
        ing2, addr2 = start_ingest(hop, db2)
        try:
            for line in p.stdout.splitlines():
                c = http.client.HTTPConnection(*addr2.rsplit(":", 1), timeout=30)
                c.request("POST", "/v1/traces", body=line,
                          headers={"Content-Type": "application/json"})
                resp = c.getresponse()
                body = resp.read()
                if resp.status != 200 or json.loads(body) != {}:
                    fails.append("%s: export of %s answered %s %r" % (
                        encoding, mid0, resp.status, body[:200]))
                c.close()
        finally:
            stop_ingest(ing2)
        before, _ = trace(hop, db, mid0)
        after, e = trace(hop, db2, mid0)
        if p.returncode != 0 or not after or [r["hops"] for r in after] != \
                [r["hops"] for r in before] or [r["duration_ms"] for r in after] != \
                [r["duration_ms"] for r in before] or \
                sorted(x["id"] for x in after[0]["spans"]) != \
                sorted(x["id"] for x in before[0]["spans"]):
            fails.append("%s: trace --format otlp of %s does not read back the same: %s" % (
                encoding, mid0, e or json.dumps(after)[:400]))
        # the batch's trace id names both requests it served
        rr, e = trace(hop, db, poll["traceId"])
        want = sorted(roots[s["traceId"]]["spanId"] for s in sends)
        if rr is None or sorted(x["root"] for x in rr) != want:
            fails.append("%s: consumer trace %s: %s, expected roots %s" % (
                encoding, poll["traceId"], e or [x["root"] for x in rr], want))
    except Exception as e:  # noqa: BLE001 - reported as a failure
        fails.append("%s: %s" % (encoding, e))
    finally:
        if ing:
            ing.kill()
            ing.wait()
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    return fails


def main():
    hop = os.path.abspath(sys.argv[1])
    if not shutil.which("node"):
        skip("node is not installed (scripts/setup.sh)")
    missing = [m for m in NEEDED if not os.path.isdir(os.path.join(DEPS, m))]
    if missing:
        skip("npm packages missing in .deps/ (scripts/setup.sh): " + ", ".join(missing))
    bad = 0
    for enc, gz in (("json", False), ("protobuf", True)):
        fails = one_encoding(hop, enc, gz)
        for f in fails:
            print(f)
        print("otel sdk over OTLP/HTTP %s%s: %s" % (enc, " (gzip)" if gz else "",
                                                  "ok" if not fails else "%d failures" % len(fails)))
        bad += bool(fails)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
