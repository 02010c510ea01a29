#!/usr/bin/env python3
"""Writes fuzz/corpus/otlp/ seeds from the OTLP/JSON fixtures: each
document once as JSON and once converted to the protobuf encoding
(ExportTraceServiceRequest, field numbers from proto/), with the target's
leading selector byte (odd: JSON, even: protobuf; fuzz_otlp.c).

    fuzz/otlp_seeds.py fixtures/otel-*/*otlp.ndjson
"""
import json
import os
import struct
import sys


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def ld(num, data):
    return field(num, 2, varint(len(data)) + data)


def s(num, text):
    return ld(num, text.encode())


def anyvalue(v):
    if "stringValue" in v:
        return s(1, v["stringValue"])
    if "boolValue" in v:
        return field(2, 0, varint(1 if v["boolValue"] else 0))
    if "intValue" in v:
        return field(3, 0, varint(int(v["intValue"])))
    if "doubleValue" in v:
        return field(4, 1, struct.pack("<d", float(v["doubleValue"])))
    if "arrayValue" in v:
        return ld(5, b"".join(ld(1, anyvalue(x))
                              for x in v["arrayValue"].get("values", [])))
    if "kvlistValue" in v:
        return ld(6, b"".join(ld(1, kv(x))
                              for x in v["kvlistValue"].get("values", [])))
    if "bytesValue" in v:
        import base64
        return ld(7, base64.b64decode(v["bytesValue"]))
    return b""


def kv(a):
    return s(1, a["key"]) + ld(2, anyvalue(a.get("value", {})))


def attrs(num, lst):
    return b"".join(ld(num, kv(a)) for a in lst or [])


def hexb(num, h):
    """An id's bytes; a malformed id as its text's bytes (a seed of the
    malformed fixture stays malformed)."""
    if not h:
        return b""
    try:
        return ld(num, bytes.fromhex(h))
    except ValueError:
        return ld(num, str(h).encode())


def span(sp):
    out = hexb(1, sp.get("traceId")) + hexb(2, sp.get("spanId"))
    if sp.get("traceState"):
        out += s(3, sp["traceState"])
    out += hexb(4, sp.get("parentSpanId"))
    out += s(5, sp.get("name", ""))
    if "kind" in sp:
        out += field(6, 0, varint(int(sp["kind"])))
    for num, key in ((7, "startTimeUnixNano"), (8, "endTimeUnixNano")):
        if key in sp:
            out += field(num, 1, struct.pack("<Q", int(sp[key])))
    out += attrs(9, sp.get("attributes"))
    for ev in sp.get("events", []):
        e = field(1, 1, struct.pack("<Q", int(ev.get("timeUnixNano", 0))))
        e += s(2, ev.get("name", "")) + attrs(3, ev.get("attributes"))
        out += ld(11, e)
    for ln in sp.get("links", []):
        out += ld(13, hexb(1, ln.get("traceId")) + hexb(2, ln.get("spanId")) +
                  attrs(4, ln.get("attributes")))
    st = sp.get("status")
    if st:
        out += ld(15, (s(2, st["message"]) if st.get("message") else b"") +
                  (field(3, 0, varint(int(st["code"]))) if "code" in st else b""))
    if "flags" in sp:
        out += field(16, 5, struct.pack("<I", int(sp["flags"])))
    return out


def request(doc):
    out = b""
    for rs in doc.get("resourceSpans", []):
        body = b""
        if "resource" in rs:
            body += ld(1, attrs(1, rs["resource"].get("attributes")))
        for ss in rs.get("scopeSpans", []):
            sc = ss.get("scope", {})
            sbody = ld(1, s(1, sc.get("name", "")) +
                       (s(2, sc["version"]) if sc.get("version") else b""))
            for sp in ss.get("spans", []):
                sbody += ld(2, span(sp))
            body += ld(2, sbody)
        out += ld(1, body)
    return out


def main():
    dest = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "corpus", "otlp")
    os.makedirs(dest, exist_ok=True)
    n = 0
    for path in sys.argv[1:]:
        base = os.path.basename(os.path.dirname(path)) + "-" + \
            os.path.basename(path).split(".")[0]
        with open(path) as f:
            for i, line in enumerate(f):
                if not line.strip():
                    continue
                with open(os.path.join(dest, f"{base}-{i}.json"), "wb") as o:
                    o.write(b"\x01" + line.strip().encode())
                n += 1
                try:
                    pb = request(json.loads(line))
                except (TypeError, ValueError, KeyError, AttributeError,
                        json.JSONDecodeError):
                    continue  # a malformed document: its JSON seed only
                with open(os.path.join(dest, f"{base}-{i}.pb"), "wb") as o:
                    o.write(b"\x00" + pb)
    print(f"{n} documents, {len(os.listdir(dest))} seeds in {dest}")


if __name__ == "__main__":
    main()
