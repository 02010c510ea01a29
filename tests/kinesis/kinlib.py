"""Helpers for the Kinesis end-to-end tests (Python 3 stdlib only).

- kinesalite(): starts kinesalite (installed by scripts/setup.sh into
  .deps/node_modules) in memory on a free loopback port; the tests exit
  with SKIP (77) when it is not installed.
- api(): one Kinesis JSON-API call (kinesalite does not check signatures).
- corpus_records(): a generated payments corpus as Kinesis record payloads,
  the way the pipeline delivers them: CloudWatch Logs subscription messages
  gzip'd, X-Ray documents raw or daemon-framed, the application's own
  stream records as GetRecords-shaped documents.
- Proxy: a tiny HTTP proxy in front of kinesalite that injects throttling,
  5xx, expired iterators and ListShards paging, and logs what it saw.
"""
import gzip
import http.server
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GEN = os.path.join(ROOT, "tests", "corpus", "gen_corpus.py")
DUMMY_ENV = {"AWS_ACCESS_KEY_ID": "AKIDHOPTRACETEST",
             "AWS_SECRET_ACCESS_KEY": "hoptrace-test-secret-do-not-log",
             "AWS_SESSION_TOKEN": "hoptrace-test-token",
             "AWS_REGION": "us-east-1"}


def kinesalite_bin():
    cand = [os.environ.get("HT_KINESALITE", ""),
            os.path.join(ROOT, ".deps", "node_modules", ".bin", "kinesalite")]
    for c in cand:
        if c and os.access(c, os.X_OK):
            return c
    return shutil.which("kinesalite")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Kinesalite:
    def __init__(self):
        exe = kinesalite_bin()
        if not exe:
            print("SKIP: kinesalite is not installed (scripts/setup.sh "
                  "installs it into .deps/node_modules)")
            sys.exit(SKIP)
        if not shutil.which("node"):
            print("SKIP: node is not installed (scripts/setup.sh installs it)")
            sys.exit(SKIP)
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [exe, "--port", str(self.port), "--createStreamMs", "0",
                 "--deleteStreamMs", "0", "--updateStreamMs", "0",
                 "--shardLimit", "100"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_up():
                return
            self.stop()
        raise SystemExit("FAIL: kinesalite did not start")

    def _wait_up(self):
        for _ in range(200):
            if self.proc.poll() is not None:
                return False
            try:
                api(self.url, "ListStreams", {})
                return True
            except OSError:
                time.sleep(0.05)
        return False

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.stop()


def api(url, op, body, timeout=30):
    req = urllib.request.Request(
        url + "/", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Target": "Kinesis_20131202." + op,
                 "X-Amz-Date": "20150830T123600Z",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20150830/"
                 "us-east-1/kinesis/aws4_request, SignedHeaders=host, "
                 "Signature=0"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = r.read()
    return json.loads(data) if data else {}


def wait_active(url, stream):
    for _ in range(200):
        d = api(url, "DescribeStreamSummary", {"StreamName": stream})
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return
        time.sleep(0.05)
    raise SystemExit("FAIL: stream %s never became ACTIVE" % stream)


def create_stream(url, stream, shards):
    api(url, "CreateStream", {"StreamName": stream, "ShardCount": shards})
    wait_active(url, stream)


def put_records(url, stream, payloads, seed=1):
    """PutRecords in chunks of 200; random partition keys so every shard
    gets some. Returns {shard id: count}."""
    import base64
    rnd = random.Random(seed)
    per_shard = {}
    for i in range(0, len(payloads), 200):
        recs = [{"Data": base64.b64encode(p).decode(),
                 "PartitionKey": "pk-%d" % rnd.randrange(1 << 30)}
                for p in payloads[i:i + 200]]
        r = api(url, "PutRecords", {"StreamName": stream, "Records": recs})
        if r.get("FailedRecordCount"):
            raise SystemExit("FAIL: PutRecords failed: %r" % r)
        for rec in r["Records"]:
            per_shard[rec["ShardId"]] = per_shard.get(rec["ShardId"], 0) + 1
    return per_shard


def gen_corpus(out, n, seed, stream_batch=1):
    subprocess.run([sys.executable, GEN, "--requests", str(n), "--seed",
                    str(seed), "--stream-batch", str(stream_batch), "--out",
                    out], check=True, capture_output=True)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num, payload):
    """A length-delimited protobuf field."""
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def kpl_aggregate(records):
    """A KPL aggregated record (the KPL's public aggregation format:
    magic, protobuf AggregatedRecord, MD5 of the protobuf), encoded by hand
    so the test does not share the reader's protobuf code."""
    import hashlib
    pb = _field(1, b"pk")
    for r in records:
        pb += _field(3, _varint(1 << 3 | 0) + _varint(0) + _field(3, r))
    return b"\xf3\x89\x9a\xc2" + pb + hashlib.md5(pb).digest()


def corpus_records(corpus, seed=1, kpl_groups=0):
    """The corpus as record payloads (bytes), shuffled deterministically.
    kpl_groups > 0: that many groups of 3 X-Ray documents go in as KPL
    aggregated records."""
    rnd = random.Random(seed)
    recs = []
    with open(os.path.join(corpus, "segments.ndjson"), "rb") as f:
        lines = [ln.rstrip(b"\n") for ln in f if ln.strip()]
    i = 0
    while i < len(lines):
        if lines[i].startswith(b'{"format"') and i + 1 < len(lines):
            # a daemon datagram, or half of them as bare documents
            recs.append(lines[i] + b"\n" + lines[i + 1] if rnd.random() < 0.5
                        else lines[i + 1])
            i += 2
        else:
            recs.append(lines[i])
            i += 1
    for g in range(min(kpl_groups, len(recs) // 3)):
        recs[g:g + 3] = [kpl_aggregate(recs[g:g + 3])]
    with open(os.path.join(corpus, "logs-cwl.ndjson"), "rb") as f:
        for ln in f:
            if ln.strip():
                recs.append(gzip.compress(ln.rstrip(b"\n"), 6))
    with open(os.path.join(corpus, "logs-kinesis.json")) as f:
        doc = json.load(f)
    rs = doc.get("Records", [])
    for i in range(0, len(rs), 40):
        part = dict(doc)
        part["Records"] = rs[i:i + 40]
        recs.append(json.dumps(part).encode())
    big = [r for r in recs if len(r) > 1000000]
    if big:
        raise SystemExit("FAIL: a corpus record is over Kinesis' 1 MB")
    rnd.shuffle(recs)
    return recs


def check_truth(hop, db, corpus, ids="all"):
    checker = os.path.join(ROOT, "..", "shared", "tools", "check_traces.py")
    if not os.path.exists(checker):
        checker = os.path.join(ROOT, "tests", "corpus", "check_traces.py")
    p = subprocess.run([sys.executable, checker, hop, db, corpus, "--ids",
                        ids],
                       capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-3000:])
        print(p.stderr[-3000:])
        return False
    print("truth: " + (p.stdout.strip().splitlines() or ["ok"])[-1])
    return True


def checkpoints(db, wait=False):
    """{key: value} of the store's checkpoints table (mdb_dump -p).

    With wait=True (polling a store that a running hoptrace may still be
    creating), a store whose checkpoints table does not exist yet reads as
    empty instead of failing."""
    p = subprocess.run(["mdb_dump", "-p", "-s", "checkpoints", db],
                       capture_output=True, text=True, check=not wait)
    if p.returncode != 0:
        return {}
    body = p.stdout.split("HEADER=END\n", 1)[1].splitlines()
    out = {}
    for k, v in zip(body[0::2], body[1::2]):
        if k == "DATA=END":
            break
        out[k.strip()] = v.strip()
    return out


def hop_env(extra=None):
    env = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
              "AWS_DEFAULT_REGION"):
        env.pop(k, None)
    env.update(DUMMY_ENV)
    env.update(extra or {})
    return env


class Proxy:
    """Forwards to `upstream` (or answers itself when upstream is None).
    fault(op, body) may return (status, json) to answer instead."""

    def __init__(self, upstream, fault=None, page_shards=0):
        self.upstream = upstream
        self.fault = fault
        self.page_shards = page_shards
        self.log = []  # (op, request json, response status, response json)
        self.headers = []
        self.verify_secret = None  # set: every request's SigV4 is checked
        self.bad_signatures = []
        self.lock = threading.Lock()
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                op = self.headers.get("X-Amz-Target", "").split(".")[-1]
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                with proxy.lock:
                    proxy.headers.append(dict(self.headers))
                    if proxy.verify_secret:
                        bad = verify_sigv4(dict(self.headers), raw,
                                           proxy.verify_secret)
                        if bad:
                            proxy.bad_signatures.append(bad)
                status, resp = proxy.handle(op, body, raw, self.headers)
                data = json.dumps(resp).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def handle(self, op, body, raw, headers):
        if self.fault:
            r = self.fault(op, body)
            if r:
                with self.lock:
                    self.log.append((op, body, r[0], r[1]))
                return r
        if op == "ListShards" and self.page_shards:
            return self.list_paged(body)
        try:
            req = urllib.request.Request(
                self.upstream + "/", data=raw, method="POST",
                headers={k: v for k, v in headers.items()
                         if k.lower() not in ("host", "content-length")})
            with urllib.request.urlopen(req, timeout=30) as r:
                status, resp = r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            status, resp = e.code, json.loads(e.read() or b"{}")
        with self.lock:
            self.log.append((op, body, status, resp))
        return status, resp

    def list_paged(self, body):
        """ListShards in pages of page_shards, with a NextToken (which must
        come without StreamName, as the real API insists)."""
        if "NextToken" in body:
            if "StreamName" in body:
                return 400, {"__type": "InvalidArgumentException",
                             "message": "NextToken and StreamName cannot be "
                             "provided together."}
            stream, start = body["NextToken"].split("|")
        else:
            stream, start = body["StreamName"], "0"
        full = api(self.upstream, "ListShards", {"StreamName": stream})
        shards = full["Shards"]
        s = int(start)
        out = {"Shards": shards[s:s + self.page_shards]}
        if s + self.page_shards < len(shards):
            out["NextToken"] = "%s|%d" % (stream, s + self.page_shards)
        with self.lock:
            self.log.append(("ListShards", body, 200, out))
        return 200, out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def verify_sigv4(headers, body, secret):
    """Recomputes the SigV4 signature of a POST / the proxy received.
    Returns None when it matches, else what is wrong."""
    import hashlib
    import hmac
    auth = headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    parts = dict(p.strip().split("=", 1)
                 for p in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    cred = parts["Credential"].split("/")
    date, region, service = cred[1], cred[2], cred[3]
    signed = parts["SignedHeaders"].split(";")
    lower = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    for need in ("host", "x-amz-date", "x-amz-target", "content-type"):
        if need not in signed:
            return "%s is not signed" % need
    if "x-amz-security-token" in lower and "x-amz-security-token" not in signed:
        return "the security token is sent but not signed"
    canon = "POST\n/\n\n" + "".join("%s:%s\n" % (h, lower.get(h, ""))
                                    for h in signed)
    canon += "\n" + ";".join(signed) + "\n" + hashlib.sha256(body).hexdigest()
    amz = lower["x-amz-date"]
    sts = "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s" % (
        amz, date, region, service, hashlib.sha256(canon.encode()).hexdigest())

    def h(k, m):
        return hmac.new(k, m.encode(), hashlib.sha256).digest()
    k = h(h(h(h(("AWS4" + secret).encode(), date), region), service),
          "aws4_request")
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    if sig != parts["Signature"]:
        return "signature mismatch"
    return None
