#!/usr/bin/env python3
"""Browser test of the web view of `hoptrace serve` (issue 13, part 3).

Builds a store from the shared payments sample (or, without it, the
simulator's 12 requests of the same pipeline) and the web fixtures
(tests/web/fixtures), starts `hoptrace serve` on a free loopback port, and
opens the pages in Debian's headless Chromium (--dump-dom, --screenshot).
The page's text is checked against the JSON API, not its pixels:

- /trace/{id} of every payments request: every span's name in its row,
  every hop's row labelled with via, resource and wait_ms exactly as the API
  gives it (JavaScript's number form), every step of the critical path
  marked (row class and the visible word "critical"), the critical path
  table, the warnings, pending hops, the service graph (SVG) with the waits
  on its edges.
- a batch consumer invocation's id: one section per request.
- #span=ID: the details panel shows every id of that span.
- a request whose service is `<img src=x onerror=alert(1)>`: the text is
  shown as text, and the DOM has no <img>, no <b>, no on* attribute, no
  script but app.js.
- a request of 326 spans: every span has its row, the axis is sticky.
- / : routes, stages with their status, functions.
- an unknown id: "Not found".
- the first request of every fixture in fixtures/, each in its own store.
Screenshots are saved in ARTEFACT_DIR (printed).

usage: web_view.py [--keyboard] HOPTRACE SAMPLE_DIR WEB_FIXTURES_DIR ARTEFACT_DIR
Exit 77 (skip) when chromium is not installed. Without the payments
sample at SAMPLE_DIR (a checkout without ../shared), the same pipeline's
12 requests come from `hoptrace simulate --format sample` instead.

--keyboard: instead, tests/web/keyboard.mjs drives Chromium over the
DevTools protocol with keys only (Tab, arrows, Enter, Space) on a payments
request's page; exit 77 without node or its WebSocket.
"""
import html.parser
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HTML_SERVICE = "<img src=x onerror=alert(1)>"
HTML_CONSUMER = "process-<b>order</b>\"'&amp;"
HTML_CALL = "<svg onload=alert(3)>"

SKEW_FIXTURES = ("clock-skew", "clock-skew-consumer")

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, flush=True)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def js_num(x):
    """A JSON number as JavaScript's String(x) writes it (what the page
    shows): integral values without '.0', others in shortest form."""
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return str(x)
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    r = repr(x)
    return r


# ---- a small DOM from Chromium's serialisation ---------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link",
        "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag = tag
        self.attrs = dict(attrs)
        self.parent = parent
        self.kids = []  # Node or str

    def text(self):
        out = []

        def walk(n):
            for k in n.kids:
                if isinstance(k, str):
                    out.append(k)
                else:
                    walk(k)
        walk(self)
        return "".join(out)

    def classes(self):
        return (self.attrs.get("class") or "").split()

    def iter(self):
        yield self
        for k in self.kids:
            if isinstance(k, Node):
                yield from k.iter()

    def find_all(self, pred):
        return [n for n in self.iter() if pred(n)]


class DomBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        n = Node(tag, attrs, self.cur)
        self.cur.kids.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.cur.kids.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.kids.append(data)


def parse_dom(text):
    b = DomBuilder()
    b.feed(text)
    b.close()
    return b.root


# ---- chromium ---------------------------------------------------------------

def chromium_path():
    for name in (os.environ.get("HT_CHROMIUM"), "chromium",
                 "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    def __init__(self, exe, work):
        self.exe = exe
        self.work = work
        self.n = 0

    def _run(self, extra, url):
        self.n += 1
        prof = os.path.join(self.work, "profile-%d" % self.n)
        cmd = [self.exe, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-quic", "--no-first-run",
               "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--user-data-dir=" + prof,
               "--virtual-time-budget=10000"] + extra + [url]
        try:
            # TMPDIR: chromium's own folder beside the profile
            # (org.chromium.Chromium.*, its singleton socket) goes with work
            r = subprocess.run(cmd, capture_output=True, timeout=120,
                               env=dict(os.environ, TMPDIR=self.work))
        finally:
            shutil.rmtree(prof, ignore_errors=True)
        return r

    def dom(self, url):
        r = self._run(["--dump-dom"], url)
        out = r.stdout.decode("utf-8", "replace")
        if r.returncode != 0 or "<html" not in out:
            fail("chromium --dump-dom %s: exit %d, %s" % (
                url, r.returncode, r.stderr.decode("utf-8", "replace")[-400:]))
        return out

    def screenshot(self, url, path):
        r = self._run(["--screenshot=" + path, "--window-size=1400,2000",
                       "--hide-scrollbars"], url)
        if check(r.returncode == 0 and os.path.exists(path) and
                 os.path.getsize(path) > 1000,
                 "screenshot of %s not written (exit %d)" % (url,
                                                            r.returncode)):
            print("screenshot: %s" % path, flush=True)


# ---- the server ---------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(hop, db, log):
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen([hop, "--db", db, "serve", "--listen",
                              "127.0.0.1:%d" % port],
                             stdout=log, stderr=log)
        base = "http://127.0.0.1:%d" % port
        deadline = time.time() + 20
        while time.time() < deadline:
            if p.poll() is not None:
                break
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2):
                    return p, base
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        stop_server(p)
    raise RuntimeError("hoptrace serve did not start (see %s)" % log.name)


def stop_server(p):
    """SIGTERM; the server drains and exits 0 (a sanitizer report would
    make it non-zero)."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            fail("hoptrace serve did not exit within 15 s of SIGTERM")
            return
    check(p.returncode == 0,
          "hoptrace serve exited %d after SIGTERM" % p.returncode)


def api(base, path):
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return json.loads(r.read())


def page(base, path):
    return base + path


def trace_url(base, id_, frag=""):
    return base + "/trace/" + urllib.parse.quote(id_, safe="") + frag


# ---- the checks -----------------------------------------------------------

def rows_of(section):
    return section.find_all(lambda n: "wf-row" in n.classes())


def check_request(sec, req, what):
    """One request's section against its JSON."""
    rows = rows_of(sec)
    by_span = {}
    by_hop = {}
    for r in rows:
        if "data-span" in r.attrs:
            by_span.setdefault(r.attrs["data-span"], r)
        if "data-hop" in r.attrs:
            by_hop[int(r.attrs["data-hop"])] = r
    spans = req["spans"]
    check(len(by_span) == len({s["id"] for s in spans}),
          "%s: %d span rows for %d spans" % (what, len(by_span), len(spans)))
    for s in spans:
        r = by_span.get(s["id"])
        if not check(r is not None, "%s: no row for span %s (%s)" %
                     (what, s["id"], s["name"])):
            continue
        nm = r.find_all(lambda n: "nm" in n.classes())
        check(nm and nm[0].text() == s["name"],
              "%s: row of span %s shows %r, not its name %r" %
              (what, s["id"], nm[0].text() if nm else None, s["name"]))
        check(js_num(s["duration_ms"]) + " ms" in r.text(),
              "%s: row of span %s lacks its duration %s ms" %
              (what, s["name"], js_num(s["duration_ms"])))
        if s.get("cold_start"):
            check("cold start" in r.text(),
                  "%s: cold span %s not marked" % (what, s["name"]))
    for i, h in enumerate(req["hops"]):
        r = by_hop.get(i)
        if not check(r is not None, "%s: no row for hop %d (%s %s)" %
                     (what, i, h["via"], h["resource"])):
            continue
        bars = r.find_all(lambda n: "bar-label" in n.classes())
        want = "%s · %s · %s ms" % (h["via"], h["resource"],
                                    js_num(h["wait_ms"]))
        check(bars and bars[0].text() == want,
              "%s: hop %d's bar is labelled %r, want %r" %
              (what, i, bars[0].text() if bars else None, want))
        if h.get("pending"):
            check("pending" in r.classes() and "pending" in r.text(),
                  "%s: pending hop %d not shown as pending" % (what, i))
    # The critical path: every step's row is marked, visibly and in text.
    for c in req["critical_path"]:
        if c["kind"] == "wait":
            marked = [r for i, r in by_hop.items()
                      if req["hops"][i]["to"] == c["span"] and
                      req["hops"][i]["via"] == c.get("via")]
        else:
            marked = [by_span[c["span"]]] if c["span"] in by_span else []
        check(marked and all("critical" in r.classes() and
                             r.attrs.get("data-critical") == "true" and
                             "critical" in r.text() for r in marked),
              "%s: critical step %s %s (%s) not marked" %
              (what, c["kind"], c["name"], c["span"]))
    on_path = {c["span"] for c in req["critical_path"] if c["kind"] != "wait"}
    for sid, r in by_span.items():
        if sid not in on_path:
            check("critical" not in r.classes(),
                  "%s: span %s marked critical but is not on the path" %
                  (what, sid))
    tables = sec.find_all(lambda n: n.tag == "table" and any(
        isinstance(k, Node) and k.tag == "caption" and
        k.text().startswith("Critical path") for k in n.kids))
    if check(tables, "%s: no critical path table" % what):
        trs = tables[0].find_all(lambda n: n.tag == "tr" and
                                 "data-kind" in n.attrs)
        check([t.attrs["data-kind"] for t in trs] ==
              [c["kind"] for c in req["critical_path"]],
              "%s: critical path table does not list the path" % what)
    heads = sec.find_all(lambda n: n.tag == "h3" and
                         n.text().startswith("Warnings"))
    check(heads and heads[0].text() == "Warnings (%d)" % len(req["warnings"]),
          "%s: warnings heading %r, want %d" %
          (what, heads[0].text() if heads else None, len(req["warnings"])))
    warn_items = sec.find_all(lambda n: "warn" in n.classes())
    check(len(warn_items) == len(req["warnings"]),
          "%s: %d warnings shown, %d in the document" %
          (what, len(warn_items), len(req["warnings"])))
    # The service graph: an SVG with one edge label per hop wait.
    svgs = sec.find_all(lambda n: n.tag == "svg" and
                        "graph" in n.classes())
    if check(svgs, "%s: no service graph" % what):
        texts = [t.text() for t in svgs[0].find_all(lambda n: n.tag == "text")]
        for h in req["hops"]:
            check("%s %s" % (h["via"], h["resource"]) in texts and
                  any(t.endswith(" " + js_num(h["wait_ms"]) + " ms")
                      for t in texts),
                  "%s: graph lacks the edge label of hop %s %s %s ms" %
                  (what, h["via"], h["resource"], js_num(h["wait_ms"])))
        services = {s.get("service") or s["name"] for s in spans}
        titles = {t.text() for t in svgs[0].find_all(
            lambda n: n.tag == "title")}
        for sv in services:
            check(sv in titles, "%s: graph has no node %r" % (what, sv))


def request_sections(dom):
    return dom.find_all(lambda n: n.tag == "section" and
                        "request" in n.classes())


def no_injection(dom, what):
    for n in dom.iter():
        for a in n.attrs:
            check(not a.lower().startswith("on"),
                  "%s: element <%s> has an attribute %s" % (what, n.tag, a))
    check(not dom.find_all(lambda n: n.tag in ("img", "b", "iframe",
                                               "object", "embed")),
          "%s: an element was injected from data" % what)
    scripts = dom.find_all(lambda n: n.tag == "script")
    check(len(scripts) == 1 and scripts[0].attrs.get("src") ==
          "/static/app.js" and not scripts[0].text().strip(),
          "%s: scripts other than /static/app.js: %r" %
          (what, [s.attrs for s in scripts]))
    check(not dom.find_all(lambda n: n.tag == "svg" and
                           "graph" not in n.classes()),
          "%s: an <svg> other than the service graph" % what)


def keyboard(hop, sample, exe, artefacts):
    """tests/web/keyboard.mjs against a server over the payments sample."""
    node = shutil.which("node")
    if not node:
        print("SKIP: node is not installed; the keyboard test drives "
              "Chromium over the DevTools protocol from node")
        return 77
    truth = json.load(open(os.path.join(sample, "truth.json")))
    work = tempfile.mkdtemp(prefix="ht-web-kbd-")
    server = None
    try:
        db = os.path.join(work, "db")
        r = subprocess.run([hop, "--db", db, "ingest"] +
                           [os.path.join(sample, f) for f in
                            ("segments.ndjson", "logs-cwl.ndjson",
                             "logs-kinesis.json")],
                           capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL: ingest: exit %d: %s" % (r.returncode, r.stderr))
            return 1
        log = open(os.path.join(artefacts, "serve-keyboard.log"), "w")
        server, base = start_server(hop, db, log)
        url = trace_url(base, truth["requests"][0]["apigw_request_id"])
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "keyboard.mjs")
        env = dict(os.environ, NODE_NO_WARNINGS="1", TMPDIR=work)
        r = subprocess.run([node, "--experimental-websocket", script, exe,
                            url], env=env, timeout=180)
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        return 1
    return r.returncode


def main():
    args = sys.argv[1:]
    kbd = bool(args) and args[0] == "--keyboard"
    if kbd:
        args = args[1:]
    if len(args) != 4:
        print(__doc__)
        return 2
    hop, sample, fixtures, artefacts = args
    project_fixtures = os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "..", "fixtures")
    exe = chromium_path()
    if not exe:
        print("SKIP: chromium is not installed (Debian package chromium); "
              "the web view's browser test needs it")
        return 77
    generated = None
    if not os.path.exists(os.path.join(sample, "truth.json")):
        # a checkout without ../shared (CI): the same pipeline, files and
        # truth from the simulator, so the test still runs
        generated = tempfile.mkdtemp(prefix="ht-web-sample-")
        p = subprocess.run([hop, "simulate", "--requests", "12", "--seed", "1",
                            "--format", "sample", "--out", generated],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print("FAIL: simulate: %s" % p.stderr.strip())
            return 1
        print("NOTE: the payments sample is not at %s (../shared/samples); "
              "using `hoptrace simulate --requests 12 --seed 1 --format "
              "sample` instead (the same pipeline, layout and truth)" % sample)
        sample = generated
    try:
        return run_checks(hop, sample, fixtures, artefacts, exe, kbd,
                          project_fixtures)
    finally:
        if generated:
            shutil.rmtree(generated, ignore_errors=True)


def run_checks(hop, sample, fixtures, artefacts, exe, kbd, project_fixtures):
    os.makedirs(artefacts, exist_ok=True)
    if kbd:
        return keyboard(hop, sample, exe, artefacts)
    truth = json.load(open(os.path.join(sample, "truth.json")))
    work = tempfile.mkdtemp(prefix="ht-web-")
    server = None
    try:
        db = os.path.join(work, "db")
        inputs = [os.path.join(sample, f) for f in
                  ("segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json")]
        inputs += [os.path.join(fixtures, d, "segments.ndjson")
                   for d in ("html-name", "wide-300")]
        # Requests with clock-skew warnings, from the project's fixtures.
        skew = []
        for d in SKEW_FIXTURES:
            exp = json.load(open(os.path.join(project_fixtures, d,
                                              "expected.json")))
            inputs += [os.path.join(project_fixtures, d, f)
                       for f in exp["inputs"]]
            skew += [(d, r["ids"]["apigw"]) for r in exp["requests"]
                     if r.get("ids", {}).get("apigw")]
        r = subprocess.run([hop, "--db", db, "ingest"] + inputs,
                           capture_output=True, text=True)
        if r.returncode != 0:
            fail("ingest: exit %d: %s" % (r.returncode, r.stderr[-500:]))
            return 1
        log = open(os.path.join(artefacts, "serve.log"), "w")
        server, base = start_server(hop, db, log)
        print("serving %s" % base, flush=True)
        br = Browser(exe, work)

        # Every payments request by its API Gateway request id.
        for t in truth["requests"]:
            rid = t["apigw_request_id"]
            doc = api(base, "/api/v1/trace/" + urllib.parse.quote(rid))
            dom = parse_dom(br.dom(trace_url(base, rid)))
            secs = request_sections(dom)
            what = "payments request %d (%s)" % (t["i"], rid)
            if not check(len(secs) == len(doc["requests"]) == 1,
                         "%s: %d sections for %d requests" %
                         (what, len(secs), len(doc["requests"]))):
                continue
            req = doc["requests"][0]
            check_request(secs[0], req, what)
            # The API agrees with the sample's truth (same hops, waits).
            got = sorted((h["via"], h["resource"]) for h in req["hops"]
                         if not h["pending"])
            want = sorted((h["via"], h["resource"]) for h in t["hops"])
            check(got == want, "%s: hops %r, truth %r" % (what, got, want))
            if t["stalled"]:
                check(any(h["pending"] for h in req["hops"]) and
                      "PENDING" in secs[0].text(),
                      "%s: stalled request not shown as pending" % what)
            no_injection(dom, what)
        first = truth["requests"][0]["apigw_request_id"]
        br.screenshot(trace_url(base, first),
                      os.path.join(artefacts, "trace-payments.png"))

        # Warnings in words: every skew warning of the skew fixtures.
        nskew = 0
        for d, rid in skew:
            doc = api(base, "/api/v1/trace/" + urllib.parse.quote(rid))
            dom = parse_dom(br.dom(trace_url(base, rid)))
            secs = request_sections(dom)
            what = "%s request %s" % (d, rid)
            if not check(len(secs) == len(doc["requests"]),
                         "%s: %d sections for %d requests" %
                         (what, len(secs), len(doc["requests"]))):
                continue
            for sec, req in zip(secs, doc["requests"]):
                check_request(sec, req, what)
                items = [n.text() for n in sec.find_all(
                    lambda n: "warn" in n.classes())]
                for w in req["warnings"]:
                    if w.get("type") != "skew":
                        continue
                    nskew += 1
                    check(any(t.startswith("clock skew between " +
                                           " and ".join(w["names"])) and
                              t.endswith("clamped by %s ms" % js_num(w["ms"]))
                              for t in items),
                          "%s: skew warning %r not shown" % (what, w))
        check(nskew > 0, "the skew fixtures gave no skew warning to show")

        # A batch consumer invocation: every request it served.
        batch = next(t for t in truth["requests"] if t["batch_size"] > 1)
        bid = batch["process_request_id"]
        doc = api(base, "/api/v1/trace/" + urllib.parse.quote(bid))
        dom = parse_dom(br.dom(trace_url(base, bid)))
        secs = request_sections(dom)
        if check(len(doc["requests"]) == batch["batch_size"] and
                 len(secs) == len(doc["requests"]),
                 "batch %s: %d sections, %d requests in the API, batch of %d"
                 % (bid, len(secs), len(doc["requests"]),
                    batch["batch_size"])):
            for i, (sec, req) in enumerate(zip(secs, doc["requests"])):
                check_request(sec, req, "batch %s request %d" % (bid, i + 1))
            check("names %d requests" % len(secs) in dom.text(),
                  "batch %s: the page does not say it names %d requests" %
                  (bid, len(secs)))

        # #span=ID: the details panel holds every id of the span.
        req = api(base, "/api/v1/trace/" +
                  urllib.parse.quote(first))["requests"][0]
        s = next(x for x in req["spans"] if x["parent_id"] and
                 x.get("request_id"))
        dom = parse_dom(br.dom(trace_url(base, first, "#span=" + s["id"])))
        panels = dom.find_all(lambda n: "details" in n.classes())
        if check(panels, "no details panel"):
            dd = [n.text() for n in panels[0].find_all(
                lambda n: n.tag == "dd")]
            for k in ("id", "trace_id", "parent_id", "request_id"):
                check(s[k] in dd, "details of span %s lack %s %s" %
                      (s["id"], k, s[k]))
        sel = dom.find_all(lambda n: n.attrs.get("aria-selected") == "true")
        check(len(sel) == 1 and sel[0].attrs.get("data-span") == s["id"],
              "#span=%s does not select its row" % s["id"])
        check(all(r.attrs.get("tabindex") == "0" and
                  r.attrs.get("role") == "treeitem" for r in rows_of(dom)),
              "waterfall rows are not all focusable tree items")

        # HTML in names: shown as text, nothing injected.
        hfile = os.path.join(fixtures, "html-name", "segments.ndjson")
        htrace = next(json.loads(line)["trace_id"] for line in open(hfile)
                      if '"trace_id"' in line)
        doc = api(base, "/api/v1/trace/" + htrace)
        dom = parse_dom(br.dom(trace_url(base, htrace)))
        secs = request_sections(dom)
        if check(len(secs) == 1, "html-name: %d sections" % len(secs)):
            check_request(secs[0], doc["requests"][0], "html-name")
        text = dom.text()
        for name in (HTML_SERVICE, HTML_CONSUMER, HTML_CALL):
            check(name in text, "html-name: %r not shown as text" % name)
        no_injection(dom, "html-name")
        br.screenshot(trace_url(base, htrace),
                      os.path.join(artefacts, "trace-html-name.png"))

        # 326 spans: every row there, the time axis sticky.
        wfile = os.path.join(fixtures, "wide-300", "segments.ndjson")
        wtrace = next(json.loads(line)["trace_id"] for line in open(wfile)
                      if '"trace_id"' in line)
        doc = api(base, "/api/v1/trace/" + wtrace)
        check(len(doc["requests"][0]["spans"]) >= 300,
              "wide-300: only %d spans" % len(doc["requests"][0]["spans"]))
        dom = parse_dom(br.dom(trace_url(base, wtrace)))
        secs = request_sections(dom)
        if check(len(secs) == 1, "wide-300: %d sections" % len(secs)):
            check_request(secs[0], doc["requests"][0], "wide-300")
            check(secs[0].find_all(lambda n: "wf-axis" in n.classes()),
                  "wide-300: no time axis")
        css = urllib.request.urlopen(base + "/static/app.css").read().decode()
        check(".wf-axis { position: sticky" in css,
              "the time axis is not sticky in app.css")
        br.screenshot(trace_url(base, wtrace),
                      os.path.join(artefacts, "trace-wide-300.png"))

        # / : routes, stages with their status, functions.
        dom = parse_dom(br.dom(base + "/"))
        eps = api(base, "/api/v1/endpoints")
        stl = api(base, "/api/v1/stalls")
        fns = api(base, "/api/v1/functions")
        text = dom.text()
        for r in eps["routes"]:
            check(r["route"] in text and
                  js_num(r["sync_ms"]["p99"]) in text,
                  "/: route %s or its sync p99 missing" % r["route"])
        rows = dom.find_all(lambda n: n.tag == "tr" and
                            "data-status" in n.attrs)
        check(sorted(r.attrs["data-status"] for r in rows) ==
              sorted(s["status"] for s in stl["stages"]) and
              all(r.find_all(lambda n: n.text() == r.attrs["data-status"])
                  for r in rows),
              "/: stages and their status do not match /api/v1/stalls")
        check(any(s["status"] == "stalled" for s in stl["stages"]),
              "/api/v1/stalls: the sample's stalled stage is not stalled")
        for f in fns["functions"]:
            check(f["name"] in text, "/: function %s missing" % f["name"])
        no_injection(dom, "/")
        br.screenshot(base + "/", os.path.join(artefacts, "index.png"))

        # An id nobody has seen, HTML at that: said as text.
        bad = "<img src=x onerror=alert(4)>"
        dom = parse_dom(br.dom(trace_url(base, bad)))
        check("Not found" in dom.text() and
              ("Request " + bad) in dom.text(),
              "unknown id: no 'Not found', or the id not shown as text")
        no_injection(dom, "unknown HTML id")
        stop_server(server)
        server = None

        # Every shape the project's fixtures have (async invokes,
        # redelivery and fan-out, logs only, in-progress spans, stuck
        # requests, ...): each fixture in a store of its own, the page of
        # its first request checked like the sample's.
        for d in sorted(os.listdir(project_fixtures)):
            fdir = os.path.join(project_fixtures, d)
            exp_path = os.path.join(fdir, "expected.json")
            if not os.path.exists(exp_path):
                continue
            exp = json.load(open(exp_path))
            ids = exp["requests"][0]["ids"] if exp.get("requests") else {}
            rid = ids.get("apigw") or (ids.get("trace") or [None])[0]
            if not rid:
                continue
            fdb = os.path.join(work, "db-" + d)
            r = subprocess.run([hop, "--db", fdb, "ingest"] +
                               [os.path.join(fdir, f) for f in exp["inputs"]],
                               capture_output=True, text=True)
            if not check(r.returncode == 0, "ingest of fixture %s: exit %d"
                         % (d, r.returncode)):
                continue
            server, fbase = start_server(hop, fdb, log)
            doc = api(fbase, "/api/v1/trace/" + urllib.parse.quote(rid))
            dom = parse_dom(br.dom(trace_url(fbase, rid)))
            stop_server(server)
            server = None
            secs = request_sections(dom)
            what = "fixture %s (%s)" % (d, rid)
            if check(len(secs) == len(doc["requests"]),
                     "%s: %d sections for %d requests" %
                     (what, len(secs), len(doc["requests"]))):
                for sec, req in zip(secs, doc["requests"]):
                    check_request(sec, req, what)
                    if req.get("fan_out"):
                        check(sec.find_all(lambda n: n.tag == "caption" and
                                           n.text() == "Fan-out"),
                              "%s: fan-out not shown" % what)
            no_injection(dom, what)
            shutil.rmtree(fdb, ignore_errors=True)
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("web view: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
