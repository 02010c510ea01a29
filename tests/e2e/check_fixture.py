#!/usr/bin/env python3
"""Hold a hoptrace build against one fixture folder's expected.json.

Part of the e2e test tier (tests/e2e/); reads fixtures/<name>/ written by
fixtures/gen/gen_fixtures.py (schema: fixtures/README.md). It only runs the
`hoptrace` command as a user would and compares its output with the
contract in docs/cli.md; it must not know anything about the store.

usage: check_fixture.py HOPTRACE FIXTURE_DIR [FIXTURE_DIR ...]

For each folder: ingest every input file (all but expected.json, sorted by
name) in one `ingest` call into a fresh store; check exit status, and with
--strict on a second fresh store the expected strict exit; reject counts per
reason (`stats --format json`); every id of every request: exit 0, entry
count, the request among the entries, duration, hops, critical-path
services, sum and contiguity, skew warning, and where expected.json has
them the exact extras (hop_count, root_start_us, init_ms, skew_pairs,
pending, off_path, cold_spans); `--format dot` (and `dot -Tsvg`
when Graphviz is installed) and `--format text`; unknown ids exit 1; then
ingest the same files again and require byte-identical `trace --format
json` output for every id. Prints one line per failure, then
`fixture NAME: ok` or `fixture NAME: N failures`. Exit 0 when all pass.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOL_MS = 1.0        # duration and wait tolerance
SUM_TOL_MS = 0.05   # critical path must add up
CONTIG_US = 50      # critical path entries must touch
TIMEOUT = 120


def collapse(names):
    out = []
    for n in names:
        if not out or out[-1] != n:
            out.append(n)
    return out


class Fixture:
    def __init__(self, hop, folder):
        self.hop = hop
        self.dir = os.path.abspath(folder)
        self.name = os.path.basename(self.dir.rstrip("/"))
        self.failures = []
        with open(os.path.join(self.dir, "expected.json")) as f:
            self.exp = json.load(f)
        self.inputs = sorted(os.path.join(self.dir, n) for n in os.listdir(self.dir)
                             if n != "expected.json"
                             and os.path.isfile(os.path.join(self.dir, n)))

    def fail(self, msg):
        self.failures.append(msg)
        print("%s: %s" % (self.name, msg), flush=True)

    def run(self, db, *args):
        cmd = [self.hop, "--db", db] + list(args)
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, b"", b"timeout"
        except OSError as e:
            return None, b"", str(e).encode()
        return p.returncode, p.stdout, p.stderr

    # ------------------------------------------------------------------
    def ingest(self, db, strict=False):
        args = ["ingest"] + (["--strict"] if strict else []) + self.inputs
        rc, _, err = self.run(db, *args)
        return rc, err.decode("utf-8", "replace").strip().splitlines()

    def check_rejects(self, db):
        rc, out, err = self.run(db, "stats", "--format", "json")
        if rc != 0:
            self.fail("stats exit %s: %s" % (rc, err.decode(errors="replace").strip()[:160]))
            return
        try:
            got = json.loads(out).get("rejected") or {}
        except (ValueError, AttributeError) as e:
            self.fail("stats: unreadable json: %s" % e)
            return
        want = self.exp.get("rejected") or {}
        for reason in sorted(set(got) | set(want)):
            g, w = got.get(reason, 0), want.get(reason, 0)
            if g != w:
                self.fail("rejected[%s] = %s, expected %s" % (reason, g, w))

    def trace(self, db, ident, fmt="json"):
        return self.run(db, "trace", ident, "--format", fmt)

    def check_request_entry(self, where, r, t):
        errs = []
        dur = r.get("duration_ms")
        if not isinstance(dur, (int, float)) or abs(dur - t["duration_ms"]) > TOL_MS:
            errs.append("duration %s != %.3f" % (dur, t["duration_ms"]))
        hops = r.get("hops") or []
        for th in t["hops"]:
            cands = [h for h in hops if h.get("via") == th["via"]
                     and h.get("resource") == th["resource"]]
            if not cands:
                errs.append("missing hop %s:%s (have %s)" % (
                    th["via"], th["resource"],
                    sorted({"%s:%s" % (h.get("via"), h.get("resource")) for h in hops})))
                continue
            ok = [h for h in cands if isinstance(h.get("wait_ms"), (int, float))
                  and abs(h["wait_ms"] - th["wait_ms"]) <= TOL_MS]
            if not ok:
                errs.append("hop %s:%s wait %s != %.3f" % (
                    th["via"], th["resource"], [h.get("wait_ms") for h in cands], th["wait_ms"]))
            elif not any(h.get("evidence") == th["evidence"] for h in ok):
                errs.append("hop %s:%s evidence %s != %s" % (
                    th["via"], th["resource"], [h.get("evidence") for h in ok], th["evidence"]))
        cp = r.get("critical_path") or []
        names = collapse([s.get("name") for s in cp if s.get("name") in t["path"]])
        if names != t["path"]:
            errs.append("critical path services %s != %s" % (names, t["path"]))
        warnings = r.get("warnings") or []
        skew = any("skew" in json.dumps(w) for w in warnings)
        if skew != bool(t.get("skew")):
            errs.append("skew warning %s, expected %s (warnings %s)" % (
                skew, bool(t.get("skew")), json.dumps(warnings)[:160]))
        if not skew and cp:
            try:
                total = sum(s["duration_ms"] for s in cp)
                if abs(total - (dur or 0)) > SUM_TOL_MS:
                    errs.append("critical path sums to %.3f, not %s" % (total, dur))
                for a, b in zip(cp, cp[1:]):
                    if abs(a["start_us"] + a["duration_ms"] * 1000 - b["start_us"]) > CONTIG_US:
                        errs.append("critical path not contiguous at %s -> %s" % (
                            a.get("name"), b.get("name")))
                        break
                if "start_us" in r and abs(cp[0]["start_us"] - r["start_us"]) > CONTIG_US:
                    errs.append("critical path starts at %s, request at %s" % (
                        cp[0]["start_us"], r["start_us"]))
            except (KeyError, TypeError) as e:
                errs.append("critical path entry lacks %s" % e)
        elif not cp:
            errs.append("empty critical path")
        errs.extend(self.check_exact(r, t, cp, hops, warnings))
        for e in errs:
            self.fail("%s: %s" % (where, e))

    def check_exact(self, r, t, cp, hops, warnings):
        """The optional exact fields of expected.json (fixtures/README.md)."""
        errs = []
        real = [h for h in hops if not h.get("pending")]
        if "hop_count" in t and len(real) != t["hop_count"]:
            errs.append("%d hops, expected %d (one per consumer attempt): %s" % (
                len(real), t["hop_count"],
                ["%s:%s" % (h.get("via"), h.get("resource")) for h in real]))
        try:
            if cp and "root_start_us" in t and abs(cp[0]["start_us"] - t["root_start_us"]) > CONTIG_US:
                errs.append("critical path starts at %s, not at the root's start %s" % (
                    cp[0]["start_us"], t["root_start_us"]))
            if cp and abs(cp[-1]["start_us"] + cp[-1]["duration_ms"] * 1000 - t["end_us"]) > CONTIG_US:
                errs.append("critical path ends at %s, not at the last end %s" % (
                    cp[-1]["start_us"] + cp[-1]["duration_ms"] * 1000, t["end_us"]))
            if "init_ms" in t:
                init = sum(e["duration_ms"] for e in cp if e.get("kind") == "init")
                if abs(init - t["init_ms"]) > TOL_MS:
                    errs.append("init on the critical path %.3f ms, expected %.3f" % (init, t["init_ms"]))
        except (KeyError, TypeError) as e:
            errs.append("critical path entry lacks %s" % e)
        skews = [w for w in warnings if isinstance(w, dict) and w.get("type") == "skew"]
        for pair in t.get("skew_pairs", []):
            if not any(w.get("spans") == pair for w in skews):
                errs.append("no skew warning naming %s" % pair)
        pend = [h for h in hops if h.get("pending")]
        for ph in t.get("pending", []):
            m = [h for h in pend if h.get("to") is None and h.get("via") == ph["via"]
                 and h.get("resource") == ph["resource"] and h.get("from") == ph["from"]]
            if not m:
                errs.append("no pending hop %s:%s from %s" % (ph["via"], ph["resource"], ph["from"]))
            elif not isinstance(m[0].get("wait_ms"), (int, float)) or \
                    abs(m[0]["wait_ms"] - ph["wait_ms"]) > TOL_MS:
                errs.append("pending hop waited %s ms, expected %.3f" % (m[0].get("wait_ms"), ph["wait_ms"]))
            if not any(isinstance(w, dict) and w.get("type") == "pending"
                       and w.get("span") == ph["from"] for w in warnings):
                errs.append("no pending warning for %s" % ph["from"])
        if "pending" in t and len(pend) != len(t["pending"]):
            errs.append("%d pending hops, expected %d" % (len(pend), len(t["pending"])))
        off = set(t.get("off_path", []))
        on = [e.get("span") for e in cp if e.get("span") in off]
        if on:
            errs.append("the critical path runs through %s (a failed attempt)" % on)
        if "cold_spans" in t:
            got = sorted(sp.get("id") for sp in r.get("spans") or [] if sp.get("cold_start"))
            if got != sorted(t["cold_spans"]):
                errs.append("cold_start on %s, expected %s" % (got, sorted(t["cold_spans"])))
        return errs

    def all_ids(self, t):
        ids = []
        for kind, v in t["ids"].items():
            for ident in (v if isinstance(v, list) else [v]):
                ids.append((kind, ident))
        return ids

    def check_traces(self, db):
        outputs = {}
        for t in self.exp["requests"]:
            ids = self.all_ids(t)
            counts = t.get("expect_count") or {}
            root = None
            for kind, ident in ids:
                where = "request %s %s %s" % (t["name"], kind, ident)
                rc, out, err = self.trace(db, ident)
                outputs[ident] = out
                if rc != 0:
                    self.fail("%s: exit %s: %s" % (where, rc, err.decode(errors="replace").strip()[:160]))
                    continue
                try:
                    rs = json.loads(out)["requests"]
                    assert isinstance(rs, list)
                except (ValueError, KeyError, TypeError, AssertionError) as e:
                    self.fail("%s: unreadable json: %s" % (where, e))
                    continue
                want = counts.get(ident, 1)
                if kind == "corr" and ident not in counts:
                    if len(rs) < 1:
                        self.fail("%s: no requests" % where)
                elif len(rs) != want:
                    self.fail("%s: %d requests, expected %d" % (where, len(rs), want))
                if root is None:
                    if len(rs) == 1:
                        root = rs[0].get("root")
                    else:
                        self.fail("%s: first id must name one request" % where)
                        break
                mine = [r for r in rs if r.get("root") == root]
                if not mine:
                    self.fail("%s: request (root %s) not among the %d entries (roots %s)" % (
                        where, root, len(rs), [r.get("root") for r in rs]))
                    continue
                self.check_request_entry(where, mine[0], t)
            if ids:
                self.check_formats(db, t, ids[0][1])
        for ident in self.exp.get("unknown_ids", []):
            rc, _, _ = self.trace(db, ident)
            if rc != 1:
                self.fail("unknown id %s: exit %s, expected 1" % (ident, rc))
        return outputs

    def check_dot_bold(self, where, dot, js):
        """Only the critical path is bold: the nodes drawn bold are exactly
        the spans the critical path's entries name."""
        try:
            rs = json.loads(js)["requests"]
        except (ValueError, KeyError, TypeError):
            return
        want, got = set(), set()
        for ri, r in enumerate(rs):
            want |= {"r%d_%s" % (ri, e.get("span")) for e in r.get("critical_path") or []}
        for line in dot.decode(errors="replace").splitlines():
            line = line.strip()
            m = re.match(r'"(r\d+_[0-9a-f]{16})" \[label=', line)
            if m and "bold" in line:
                got.add(m.group(1))
        if got != want:
            self.fail("%s: --format dot draws bold %d spans off the path and misses %d on it" % (
                where, len(got - want), len(want - got)))

    def check_formats(self, db, t, ident):
        where = "request %s" % t["name"]
        rc, out, err = self.trace(db, ident, "dot")
        _, js, _ = self.trace(db, ident)
        if rc != 0:
            self.fail("%s: --format dot exit %s" % (where, rc))
        elif not out.lstrip().startswith(b"digraph"):
            self.fail("%s: --format dot does not start with 'digraph'" % where)
        else:
            self.check_dot_bold(where, out, js)
            if shutil.which("dot"):
                p = subprocess.run(["dot", "-Tsvg"], input=out, capture_output=True, timeout=TIMEOUT)
                if p.returncode != 0:
                    self.fail("%s: dot -Tsvg rejects the output: %s" % (
                        where, p.stderr.decode(errors="replace").strip()[:160]))
        rc, out, err = self.trace(db, ident, "text")
        if rc != 0:
            self.fail("%s: --format text exit %s" % (where, rc))
        elif t.get("pending") and b"PENDING" not in out:
            self.fail("%s: --format text does not say the request is stuck" % where)
        elif any(c < 0x20 and c not in (0x0a, 0x09) for c in out):
            self.fail("%s: --format text writes control characters" % where)

    # ------------------------------------------------------------------
    def check(self):
        tmp = tempfile.mkdtemp(prefix="hoptrace-fixture-")
        try:
            db = os.path.join(tmp, "db")
            rc, err = self.ingest(db)
            if rc != 0:
                self.fail("ingest exit %s: %s" % (rc, err[-1] if err else ""))
                return self.finish()
            db2 = os.path.join(tmp, "db-strict")
            rc, err = self.ingest(db2, strict=True)
            if rc != self.exp.get("strict_exit", 0):
                self.fail("ingest --strict exit %s, expected %s" % (rc, self.exp.get("strict_exit", 0)))
            self.check_rejects(db)
            first = self.check_traces(db)
            rc, err = self.ingest(db)
            if rc != 0:
                self.fail("second ingest exit %s: %s" % (rc, err[-1] if err else ""))
            for ident, out in first.items():
                rc, out2, _ = self.trace(db, ident)
                if out2 != out:
                    self.fail("id %s: trace output changed after ingesting the same files again" % ident)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.finish()

    def finish(self):
        if self.failures:
            print("fixture %s: %d failures" % (self.name, len(self.failures)), flush=True)
            return False
        print("fixture %s: ok" % self.name, flush=True)
        return True


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[4], file=sys.stderr)
        return 2
    hop = argv[1]
    if not (os.path.isfile(hop) and os.access(hop, os.X_OK)) and not shutil.which(hop):
        print("no hoptrace binary at %s (build first: cmake -S . -B build && cmake --build build)" % hop,
              file=sys.stderr)
        return 2
    ok = True
    for d in argv[2:]:
        if not os.path.isfile(os.path.join(d, "expected.json")):
            continue   # e.g. fixtures/gen/ when called with fixtures/*/
        ok = Fixture(hop, d).check() and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
