"""Shared pieces of the alert delivery tests (alert_alertmanager.py,
alert_webhook.py): a store with a stalled stage built from the corpus
generator, the log lines of the consumption it is missing, free loopback
ports and a small recording HTTP receiver. Python 3 stdlib only."""
import datetime
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import uuid

ACCOUNT, REGION = "123456789012", "us-east-1"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(hoptrace, db, *args, timeout=120):
    return subprocess.run([hoptrace, "--db", db, *args], capture_output=True, text=True, timeout=timeout)


def stalled_store(hoptrace, project, tmp, n=60, seed=17, stalled=3):
    """Generates a corpus whose DynamoDB Streams consumer stops, ingests it.
    Returns (db, truth)."""
    corpus, db = os.path.join(tmp, "corpus"), os.path.join(tmp, "db")
    subprocess.run([sys.executable, os.path.join(project, "tests/corpus/gen_corpus.py"), "--requests", str(n),
                    "--seed", str(seed), "--out", corpus, "--stalled", str(stalled)],
                   check=True, capture_output=True)
    p = run(hoptrace, db, "ingest", corpus)
    if p.returncode != 0:
        raise SystemExit(f"ingest failed: {p.stderr}")
    with open(os.path.join(corpus, "truth.json")) as f:
        return db, json.load(f)


def _iso(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def missing_consumption(truth, path, at_s):
    """Writes the CloudWatch Logs message of a record-ledger invocation at
    `at_s` that receives the stream records of every stalled request (found
    by the correlation id in their NewImage, as the real consumer logs it)."""
    st = truth["stall"]
    corrs = [r["correlation_id"] for r in truth["requests"] if r["stalled"]]
    rid = str(uuid.UUID(int=len(corrs) * 7919 + 12345))
    records = [{"eventID": f"{i:032x}", "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": REGION,
                "dynamodb": {"Keys": {"orderId": {"S": f"late-{i}"}},
                             "NewImage": {"orderId": {"S": f"late-{i}"}, "correlation_id": {"S": c}},
                             "SequenceNumber": str(9000000000000000000000 + i), "SizeBytes": 120,
                             "StreamViewType": "NEW_IMAGE"},
                "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{st['resource']}/stream/2026-11-01T00:00:00.000"}
               for i, c in enumerate(corrs)]
    ms = at_s * 1000
    fn = st["consumer"]
    line = {"level": "INFO", "message": "Lambda invocation event", "timestamp": _iso(ms), "service": fn,
            "function_name": fn, "function_request_id": rid, "event": {"Records": records}}
    events = [
        {"id": f"{ms:013d}1", "timestamp": ms, "message": f"START RequestId: {rid} Version: $LATEST\n"},
        {"id": f"{ms:013d}2", "timestamp": ms + 1, "message": json.dumps(line)},
        {"id": f"{ms:013d}3", "timestamp": ms + 50,
         "message": f"REPORT RequestId: {rid}\tDuration: 40.00 ms\tBilled Duration: 40 ms\t"
                    f"Memory Size: 512 MB\tMax Memory Used: 90 MB\t\n"}]
    msg = {"messageType": "DATA_MESSAGE", "owner": ACCOUNT, "logGroup": f"/aws/lambda/{fn}",
           "logStream": "2026/11/26/[$LATEST]late", "subscriptionFilters": ["hoptrace"], "logEvents": events}
    with open(path, "w") as f:
        f.write(json.dumps(msg) + "\n")
    return corrs


class Receiver:
    """Records every POST; answers 500 on paths starting with /fail."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with outer.lock:
                    outer.posts.append((self.path, self.headers.get("Content-Type"), body))
                code = 500 if self.path.startswith("/fail") else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook"):
        return f"http://127.0.0.1:{self.port}{path}"

    def take(self):
        with self.lock:
            p, self.posts = self.posts, []
        return p

    def count(self):
        with self.lock:
            return len(self.posts)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
