"""What the tests of `hoptrace serve` hosting a source share: starting serve
and reading its address, GETs that return (status, body), stopping it,
waiting until every request is visible and the store is still, and
comparing the API's trace JSON with the command's."""
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request


def get(base, path):
    try:
        with urllib.request.urlopen(base + path, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(errf, proc, pattern, what="serve"):
    """The first group of `pattern` once the process's stderr (errf, opened
    w+) shows it; SystemExit when the process ends or 30 s pass first."""
    deadline = time.time() + 30
    while time.time() < deadline:
        errf.seek(0)
        m = re.search(pattern, errf.read())
        if m:
            return m.group(1)
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    errf.seek(0)
    raise SystemExit("FAIL: %s did not start: %s" % (what, errf.read()))


def start(cmd, errpath, env=None):
    """Starts `serve` (cmd); returns the process, its stderr file and the
    base URL it prints."""
    errf = open(errpath, "w+")
    p = subprocess.Popen(cmd, stderr=errf, env=env)
    return p, errf, wait_for(errf, p, r"serving (http://[^/\s]+)/")


def stop(proc, timeout=60):
    """SIGTERM, then SIGKILL if it has not exited within timeout seconds:
    its exit status (negative: the signal that ended it)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_visible(base, ids, deadline):
    """Waits until every id answers 200; returns those that never did."""
    missing = ids
    while missing and time.time() < deadline:
        missing = [i for i in missing
                   if get(base, "/api/v1/trace/" + urllib.parse.quote(i))[0] != 200]
        if missing:
            time.sleep(0.2)
    print("visible through the API: %d of %d requests"
          % (len(ids) - len(missing), len(ids)))
    return missing


def wait_still(base, deadline):
    """Until /api/v1/stats stops changing for a second (the store is
    still)."""
    last, still = None, 0
    while still < 5 and time.time() < deadline:
        s = get(base, "/api/v1/stats")[1]
        still = still + 1 if s == last else 0
        last = s
        time.sleep(0.2)


def api_vs_cli(hop, db, base, ids):
    """How many ids answer differently through /api/v1/trace than through
    `hoptrace trace ID --format json` on the same store."""
    differ = 0
    for i in ids:
        api = get(base, "/api/v1/trace/" + urllib.parse.quote(i))[1]
        cli = subprocess.run([hop, "--db", db, "trace", i, "--format", "json"],
                             capture_output=True).stdout
        differ += api != cli
    print("API == CLI for %d of %d ids" % (len(ids) - differ, len(ids)))
    return differ
