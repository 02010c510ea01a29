#!/usr/bin/env python3
"""`hoptrace stalls --alertmanager` against a real Alertmanager.

usage: alert_alertmanager.py HOPTRACE PROJECT_DIR

Starts Debian's prometheus-alertmanager on a free loopback port with its
storage in a temporary folder (exit 77, SKIP, when it is not installed),
evaluates a store whose DynamoDB Streams consumer stopped, well after the
data (`--now` in the past of the wall clock: the alert must still arrive
active), and reads the alert back from /api/v2/alerts: exactly one
StreamStageStalled alert naming that stage's resource, producer and
consumer. Then the missing consumption is ingested, the stage evaluated
again, and the alert must be resolved (gone from the active alerts).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alert_util  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def ours(base, resource):
    _, raw = get(base + "/api/v2/alerts")
    return [a for a in json.loads(raw) if a["labels"].get("alertname") == "StreamStageStalled"
            and a["labels"].get("resource") == resource]


def wait_for(pred, seconds=30):
    """Polls pred until it holds (Alertmanager processes posts
    asynchronously); no assertion on how long that takes."""
    deadline = time.monotonic() + seconds
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(0.2)


def main():
    hoptrace, project = sys.argv[1], sys.argv[2]
    am_bin = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not am_bin:
        print("SKIP: prometheus-alertmanager is not installed (scripts/setup.sh installs it)")
        return 77
    tmp = tempfile.mkdtemp(prefix="ht_am_")
    am = None
    try:
        cfg = os.path.join(tmp, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write("route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n"
                    "receivers:\n  - name: blackhole\n")
        port = alert_util.free_port()
        base = f"http://127.0.0.1:{port}"
        am = subprocess.Popen([am_bin, f"--config.file={cfg}", f"--storage.path={os.path.join(tmp, 'data')}",
                               f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                              stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "am.log"), "w"))

        def ready():
            if am.poll() is not None:
                return "exited"
            try:
                return get(base + "/-/ready")[0] == 200
            except OSError:
                return False

        r = wait_for(ready, 60)
        if r is not True:
            print(open(os.path.join(tmp, "am.log")).read()[-2000:], file=sys.stderr)
            check(False, f"alertmanager did not become ready ({r})")
            return 1

        db, truth = alert_util.stalled_store(hoptrace, project, tmp)
        st = truth["stall"]
        now = str(st["now_s"])
        p = alert_util.run(hoptrace, db, "stalls", "--now", now, "--threshold", st.get("threshold", "300s"),
                           "--alertmanager", base, "--format", "json")
        check(p.returncode == 4, f"stalls --alertmanager exit {p.returncode}, want 4: {p.stderr}")
        out = json.loads(p.stdout)
        stalled = [g for g in out["stages"] if g["status"] == "stalled"]
        check(len(stalled) == 1 and stalled[0]["resource"] == st["resource"], "one stalled stage")

        alerts = wait_for(lambda: [a for a in ours(base, st["resource"]) if a["status"]["state"] == "active"])
        check(len(alerts) == 1, f"one active StreamStageStalled alert for {st['resource']}, got {len(alerts or [])}")
        if alerts:
            a = alerts[0]
            lab = a["labels"]
            check(lab["via"] == st["stage_via"] and lab["producer"] == st["producer"]
                  and lab["consumer"] == st["consumer"] and lab["severity"] == "critical"
                  and st["resource"] in lab["stage"], f"labels {lab}")
            check(a["annotations"].get("pending") == str(st["pending"]), f"annotations {a['annotations']}")
            roots = a["annotations"].get("example_requests", "").split()
            check(len(roots) == st["pending"], f"example requests {roots}")
            if roots:
                t = alert_util.run(hoptrace, db, "trace", roots[0], "--format", "json")
                check(t.returncode == 0, f"hoptrace trace {roots[0]} (from the alert) exit {t.returncode}")
        _, raw = get(base + "/api/v2/alerts")
        others = [x for x in json.loads(raw) if x["labels"].get("resource") != st["resource"]
                  and x["status"]["state"] == "active"]
        check(not others, f"no other stage alerts: {[x['labels'] for x in others]}")

        # the consumer catches up: the alert resolves
        late = os.path.join(tmp, "late.ndjson")
        alert_util.missing_consumption(truth, late, st["now_s"] - 30)
        p = alert_util.run(hoptrace, db, "ingest", late)
        check(p.returncode == 0, f"ingest late consumption: {p.stderr}")
        p = alert_util.run(hoptrace, db, "stalls", "--now", now, "--alertmanager", base + "/api/v2/alerts",
                           "--format", "json")
        check(p.returncode == 0, f"after recovery exit {p.returncode}, want 0: {p.stderr}")
        gone = wait_for(lambda: not [a for a in ours(base, st["resource"]) if a["status"]["state"] == "active"])
        check(gone, "the alert is resolved after the consumption arrived")
    finally:
        if am is not None:
            am.terminate()
            try:
                am.wait(timeout=20)
            except subprocess.TimeoutExpired:
                am.kill()
                am.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("alertmanager: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
