#!/usr/bin/env python3
"""The OTLP/HTTP answers of `hoptrace ingest --otlp`.

Part of the e2e tier (tests/e2e/). Starts `ingest --otlp 127.0.0.1:0
--max-body 65536` on a fresh store and checks, over plain HTTP:
- JSON and protobuf exports (protobuf encoded here by hand from the field
  numbers of opentelemetry-proto), plain and gzip: 200 with an
  ExportTraceServiceResponse in the request's encoding, and the spans are
  in the store as soon as the answer came (a 200 means committed);
- an export with a bad span: 200 with partial_success (rejected_spans 1,
  an error message) in both encodings, the good spans stored;
- an undecodable body (JSON and protobuf, and gzip that is not): 400 with
  a google.rpc.Status (code 3) in the request's encoding;
- over --max-body (by Content-Length, and once inflated): 413;
- another Content-Type or Content-Encoding: 415; another method: 405 with
  Allow: POST; another path: 404;
- sending the same export again stores nothing twice (the trace is the
  same); the summary line counts what happened;
- 300 mutated bodies: each answered 200 or 400, the receiver still up.

usage: otlp_http.py HOPTRACE
"""
import gzip
import http.client
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL: " + msg, flush=True)


# ---- protobuf, by hand -------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 1:
        return key + struct.pack("<Q", payload)
    return key + varint(len(payload)) + payload


def kv(k, v):
    return field(1, 2, k.encode()) + field(2, 2, field(1, 2, v.encode()))


def pb_span(tid, sid, name, kind, start_ns, end_ns, parent=None, attrs=None):
    b = field(1, 2, bytes.fromhex(tid)) + field(2, 2, bytes.fromhex(sid))
    if parent:
        b += field(4, 2, bytes.fromhex(parent))
    b += field(5, 2, name.encode()) + field(6, 0, kind)
    b += field(7, 1, start_ns) + field(8, 1, end_ns)
    for k, v in (attrs or {}).items():
        b += field(9, 2, kv(k, v))
    return b


def pb_export(service, spans):
    res = field(1, 2, kv("service.name", service))
    scope = b"".join(field(2, 2, s) for s in spans)
    rs = field(1, 2, res) + field(2, 2, scope)
    return field(1, 2, rs)


def pb_fields(buf):
    """(num, value) pairs of one message (varint and length-delimited)."""
    i, out = 0, []
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wire)
        out.append((num, v))
    return out


def read_varint(buf, i):
    shift = n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


# ---- JSON exports --------------------------------------------------------------

def js_span(tid, sid, name, kind, start_ns, end_ns, parent=None, attrs=None):
    s = {"traceId": tid, "spanId": sid, "name": name, "kind": kind,
         "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
         "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in (attrs or {}).items()]}
    if parent:
        s["parentSpanId"] = parent
    return s


def js_export(service, spans):
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": spans}]}]}).encode()


# ---- plumbing -----------------------------------------------------------------

class Srv:
    def __init__(self, hop, db):
        self.p = subprocess.Popen([hop, "--db", db, "ingest", "--otlp", "127.0.0.1:0",
                                   "--max-body", "65536"],
                                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
        line = self.p.stderr.readline().decode()
        if "listening on http://" not in line:
            self.p.kill()
            raise RuntimeError("ingest --otlp did not start: %r" % line)
        host, port = line.split("http://")[1].split("/")[0].rsplit(":", 1)
        self.host, self.port = host, int(port)

    def post(self, body, ctype, path="/v1/traces", method="POST", enc=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Content-Type": ctype} if ctype else {}
        if enc:
            h["Content-Encoding"] = enc
        h.update(headers or {})
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        out = (r.status, r.getheader("Content-Type"), data, r.getheader("Allow"))
        c.close()
        return out

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            _, err = self.p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            _, err = self.p.communicate()
        return self.p.returncode, err.decode(errors="replace")


def trace(hop, db, ident):
    p = subprocess.run([hop, "--db", db, "trace", ident, "--format", "json"],
                       capture_output=True, timeout=60)
    return p.returncode, p.stdout


T0 = 1797500000 * 10**9


def dead_letters(hop, db):
    out = subprocess.run([hop, "--db", db, "stats", "--format", "json"],
                         capture_output=True, text=True).stdout
    return json.loads(out)["dead_letters"]


def ids(n):
    return "%08x" % (T0 // 10**9) + ("%024x" % (0xABC000 + n)), "%016x" % (0x5100 + n)


def main():
    hop = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ht-otlp-http-")
    db = os.path.join(tmp, "db")
    srv = None
    try:
        srv = Srv(hop, db)
        J, P = "application/json", "application/x-protobuf"
        # 1. good exports, both encodings, plain and gzip: 200 and stored
        for n, (ctype, gz) in enumerate([(J, False), (J, True), (P, False), (P, True)]):
            tid, sid = ids(n)
            if ctype == J:
                body = js_export("svc-%d" % n, [js_span(tid, sid, "GET /x", 2, T0, T0 + 5 * 10**6)])
            else:
                body = pb_export("svc-%d" % n, [pb_span(tid, sid, "GET /x", 2, T0, T0 + 5 * 10**6)])
            status, rtype, data, _ = srv.post(gzip.compress(body) if gz else body, ctype,
                                              enc="gzip" if gz else None)
            what = "%s%s" % (ctype, " gzip" if gz else "")
            if status != 200:
                fail("%s: status %s (%r)" % (what, status, data[:200]))
                continue
            if rtype != ctype:
                fail("%s: answered as %s" % (what, rtype))
            if ctype == J and json.loads(data) != {}:
                fail("%s: response %r, expected {}" % (what, data))
            if ctype == P and data != b"":
                fail("%s: response %r, expected an empty ExportTraceServiceResponse" % (what, data))
            rc, out = trace(hop, db, sid)
            if rc != 0:
                fail("%s: span %s not in the store after the 200" % (what, sid))
        # 2. partial success
        tid, sid = ids(10)
        good = js_span(tid, sid, "GET /partial", 2, T0, T0 + 10**6)
        bad = js_span(tid, "zz" * 8, "bad", 1, T0, T0 + 10**6)
        status, rtype, data, _ = srv.post(js_export("svc-p", [good, bad]), J)
        try:
            ps = json.loads(data).get("partialSuccess") or {}
        except ValueError:
            ps = {}
        if status != 200 or int(ps.get("rejectedSpans", 0)) != 1 or not ps.get("errorMessage"):
            fail("json partial success: %s %r" % (status, data[:300]))
        if trace(hop, db, sid)[0] != 0:
            fail("json partial success: the good span was not stored")
        tid, sid = ids(11)
        body = pb_export("svc-p", [pb_span(tid, sid, "GET /partial", 2, T0, T0 + 10**6),
                                   field(1, 2, b"\x01\x02") + field(2, 2, bytes(8))])
        status, rtype, data, _ = srv.post(body, P)
        try:
            f = dict(pb_fields(data))
            inner = dict(pb_fields(f.get(1, b"")))
        except (ValueError, IndexError):
            inner = {}
        if status != 200 or rtype != P or inner.get(1) != 1 or not inner.get(2):
            fail("protobuf partial success: %s %s %r" % (status, rtype, data[:200]))
        if trace(hop, db, sid)[0] != 0:
            fail("protobuf partial success: the good span was not stored")
        # 3. undecodable bodies: 400 with a google.rpc.Status
        status, rtype, data, _ = srv.post(b"{not json", J)
        try:
            st = json.loads(data)
        except ValueError:
            st = {}
        if status != 400 or st.get("code") != 3 or not st.get("message"):
            fail("bad json: %s %r" % (status, data[:200]))
        # a JSON object of fields OTLP does not define is an empty export
        # (receivers MUST ignore unknown fields); a JSON array is no export
        status, rtype, data, _ = srv.post(b'{"spans":[]}', J)
        if status != 200:
            fail("json of an unknown field: %s %r" % (status, data[:200]))
        status, rtype, data, _ = srv.post(b'[{"resourceSpans":[]}]', J)
        if status != 400:
            fail("json that is no export: %s %r" % (status, data[:200]))
        status, rtype, data, _ = srv.post(b"\xff\xff\xff\xff\x0f", P)
        try:
            st = dict(pb_fields(data))
        except (ValueError, IndexError):
            st = {}
        if status != 400 or rtype != P or st.get(1) != 3 or not st.get(2):
            fail("bad protobuf: %s %s %r" % (status, rtype, data[:200]))
        status, _, data, _ = srv.post(b"\x1f\x8bnot really gzip", J, enc="gzip")
        if status != 400:
            fail("bad gzip: %s %r" % (status, data[:200]))
        # 4. too large: by length, and once inflated
        status, _, data, _ = srv.post(b" " * 70000, J)
        if status != 413:
            fail("70000-byte body: %s" % status)
        bomb = gzip.compress(b'{"resourceSpans":[' + b" " * 200000 + b"]}")
        status, _, data, _ = srv.post(bomb, J, enc="gzip")
        if status != 413:
            fail("gzip body over the limit once inflated: %s %r" % (status, data[:200]))
        # 5. content types, encodings, methods, paths
        status, _, _, _ = srv.post(b"{}", "text/plain")
        if status != 415:
            fail("text/plain: %s" % status)
        status, _, _, _ = srv.post(b"{}", J, enc="br")
        if status != 415:
            fail("Content-Encoding br: %s" % status)
        status, _, _, allow = srv.post(None, None, method="GET")
        if status != 405 or allow != "POST":
            fail("GET: %s (Allow %r)" % (status, allow))
        status, _, _, _ = srv.post(b"{}", J, path="/v1/metrics")
        if status != 404:
            fail("/v1/metrics: %s" % status)
        # unknown fields are ignored (OTLP/JSON): an empty export; a
        # resourceSpans that is not an array is a 400
        status, _, data, _ = srv.post(b'{"foo": 1}', J)
        if status != 200:
            fail("an export of only an unknown field: %s %r" % (status, data))
        status, _, data, _ = srv.post(b'{"resourceSpans": 7}', J)
        if status != 400:
            fail("resourceSpans that is a number: %s %r" % (status, data))
        status, _, data, _ = srv.post(b"{}", "application/json; charset=utf-8")
        if status != 200:
            fail("an empty export with a charset parameter: %s %r" % (status, data))
        # 6. the same export again stores nothing twice
        tid, sid = ids(20)
        kid = "%016x" % 0x7777
        body = js_export("svc-i", [js_span(tid, sid, "POST /i", 2, T0, T0 + 9 * 10**6),
                                   js_span(tid, kid, "db", 3, T0 + 10**6, T0 + 3 * 10**6, parent=sid)])
        srv.post(body, J)
        rc1, out1 = trace(hop, db, tid)
        status, _, _, _ = srv.post(body, J)
        rc2, out2 = trace(hop, db, tid)
        if status != 200 or rc1 != 0 or out1 != out2 or len(json.loads(out2)["requests"][0]["spans"]) != 2:
            fail("sending the same export twice changed the answer")
        # 6b. an export with rejected spans sent again leaves the same dead
        # letters (they are keyed by the export's content, not its sender)
        tid, sid = ids(21)
        body = js_export("svc-d", [js_span(tid, sid, "POST /d", 2, T0, T0 + 10**6),
                                   js_span(tid, "0" * 16, "bad", 3, T0, T0 + 10**6)])
        srv.post(body, J)
        before = dead_letters(hop, db)
        srv.post(body, J)
        srv.post(body, J)
        after = dead_letters(hop, db)
        if before < 1 or after != before:
            fail("dead letters of one export sent 3 times: %s after the first, %s "
                 "after the third" % (before, after))
        # 6c. messages nested deeper than anything OTLP writes (an AnyValue
        # array 5,000 deep, 35 KB: protobuf-c's recursion overflowed the
        # stack): a 400, and the receiver goes on
        any_value = field(1, 2, b"x")  # AnyValue{string_value}
        for _ in range(5000):
            # AnyValue{array_value: ArrayValue{values: [AnyValue]}}
            any_value = field(5, 2, field(1, 2, any_value))
        key_value = field(1, 2, b"k") + field(2, 2, any_value)
        resource = field(1, 2, key_value)  # Resource.attributes
        bomb = field(1, 2, field(1, 2, resource))  # .resource_spans.resource
        status = srv.post(bomb, P)[0]
        if status != 400:
            fail("an export nested 5,000 deep: %s, expected 400" % status)
        tid, sid = ids(23)
        status = srv.post(pb_export("svc-after", [pb_span(tid, sid, "GET /after", 2, T0, T0 + 10**6)]), P)[0]
        if status != 200 or trace(hop, db, sid)[0] != 0:
            fail("the receiver after the deep export: %s" % status)
        # 6d. a start time past the year 2200 (or negative, as unsigned) is
        # refused, not stored to be exported as a negative time
        tid, sid = ids(24)
        status, _, data, _ = srv.post(js_export("svc-t", [js_span(tid, sid, "GET /t", 2,
                                                                  2**64 - 1, 2**64 - 1)]), J)
        if status != 200 or b"rejected" not in data.lower() and b"rejectedSpans" not in data:
            fail("a span at 2^64-1 ns: %s %r" % (status, data[:200]))
        if trace(hop, db, sid)[0] == 0:
            fail("a span at 2^64-1 ns was stored")
        # 7. mutated bodies (both encodings): answered 200 or 400, never a
        # crash (the ASan tree runs this too)
        rnd = random.Random(14)
        tid, sid = ids(30)
        pbody = pb_export("svc-m", [pb_span(tid, sid, "GET /m", 5, T0, T0 + 10**6,
                                            parent="%016x" % 9,
                                            attrs={"messaging.system": "aws_sqs",
                                                   "messaging.message.id": "m-1"})])
        jbody = js_export("svc-m", [js_span(tid, sid, "GET /m", 5, T0, T0 + 10**6,
                                            attrs={"faas.invocation_id": "r-1"})])
        for k in range(150):
            for body, ctype in ((pbody, P), (jbody, J)):
                b = bytearray(body)
                for _ in range(rnd.randint(1, 4)):
                    b[rnd.randrange(len(b))] = rnd.randrange(256)
                status = srv.post(bytes(b), ctype)[0]
                if status not in (200, 400):
                    fail("mutated %s body %d: status %s" % (ctype, k, status))
        rc, err = srv.stop()
        srv = None
        if rc != 0:
            fail("ingest --otlp exit %s: %s" % (rc, err[-300:]))
        for want in ("too large 2", "unsupported 2"):
            if want not in err:
                fail("summary lacks %r: %s" % (want, err.strip()[-400:]))
    finally:
        if srv:
            srv.p.kill()
            srv.p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("otlp http: %s" % ("ok" if not FAILS else "%d failures" % len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
