#!/usr/bin/env python3
"""`hoptrace stalls --webhook` against a small local HTTP receiver.

usage: alert_webhook.py HOPTRACE PROJECT_DIR

A store whose DynamoDB Streams consumer stopped: one POST of the documented
JSON body (firing, the stalled stage's labels, its pending count and
example requests); a receiver answering 500 is retried with back-off and
reported (exit 5), an unreachable one too, neither crashes; `--watch`
re-sends every interval until SIGTERM (exit 0); once the missing
consumption is ingested, the next evaluation posts the alert resolved.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alert_util  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def firing(body, name="StreamStageStalled"):
    return [a for a in body.get("alerts", []) if a.get("status") == "firing" and a["labels"]["alertname"] == name]


def main():
    hoptrace, project = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="ht_webhook_")
    rcv = alert_util.Receiver()
    try:
        db, truth = alert_util.stalled_store(hoptrace, project, tmp)
        st = truth["stall"]
        now = str(st["now_s"])

        # one evaluation, one POST
        p = alert_util.run(hoptrace, db, "stalls", "--now", now, "--webhook", rcv.url(), "--format", "json")
        check(p.returncode == 4, f"stalls --webhook exit {p.returncode}, want 4: {p.stderr}")
        posts = rcv.take()
        check(len(posts) == 1, f"{len(posts)} POSTs, want 1")
        if posts:
            path, ctype, raw = posts[0]
            check(path == "/hook" and ctype == "application/json", f"POST {path} {ctype}")
            body = json.loads(raw)
            check(body.get("source") == "hoptrace" and body.get("status") == "firing", "body status firing")
            check(body.get("now_us") == st["now_s"] * 1000000, "body now_us is the evaluation time")
            f = firing(body)
            check(len(f) == 1, f"one firing StreamStageStalled alert, got {len(f)}")
            check(not firing(body, "StreamStageLagging"), "nothing lagging")
            if f:
                a = f[0]
                lab = a["labels"]
                check(lab["resource"] == st["resource"] and lab["via"] == st["stage_via"]
                      and lab["producer"] == st["producer"] and lab["consumer"] == st["consumer"]
                      and lab["severity"] == "critical", f"labels {lab}")
                check(a["annotations"]["pending"] == str(st["pending"]), f"annotations {a['annotations']}")
                check(len(a["annotations"]["example_requests"].split()) == st["pending"], "example requests")
                check(a["stage"]["status"] == "stalled" and a["stage"]["pending"] == st["pending"], "stage object")
                check(a["endsAt"] > a["startsAt"], "an active alert ends in the future")

        # a failing receiver: retried with back-off, reported, exit 5
        p = alert_util.run(hoptrace, db, "stalls", "--now", now, "--webhook", rcv.url("/fail"))
        check(p.returncode == 5, f"failing webhook: exit {p.returncode}, want 5")
        check("HTTP 500" in p.stderr and "attempt 4 of 4" in p.stderr, f"failure reported: {p.stderr[-300:]}")
        check(len(rcv.take()) == 4, "four attempts")
        dead = alert_util.free_port()
        p = alert_util.run(hoptrace, db, "stalls", "--now", now, "--webhook", f"http://127.0.0.1:{dead}/")
        check(p.returncode == 5 and "failed" in p.stderr, f"unreachable webhook: exit {p.returncode} {p.stderr[-200:]}")

        # --watch re-sends until SIGTERM
        w = subprocess.Popen([hoptrace, "--db", db, "stalls", "--now", now, "--watch", "300ms", "--webhook",
                              rcv.url()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while rcv.count() < 3 and time.monotonic() < deadline and w.poll() is None:
            time.sleep(0.1)
        check(rcv.count() >= 3, f"--watch re-sent ({rcv.count()} POSTs)")
        w.send_signal(signal.SIGTERM)
        try:
            rc = w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            w.kill()
            rc = w.wait()
        check(rc == 0, f"--watch exit {rc} after SIGTERM: {w.stderr.read()[-300:]}")
        labels = [json.dumps(firing(json.loads(b))[0]["labels"], sort_keys=True)
                  for _, _, b in rcv.take() if firing(json.loads(b))]
        check(len(set(labels)) == 1, "re-sends carry the same labels")

        # the missing consumption arrives: resolved
        late = os.path.join(tmp, "late.ndjson")
        alert_util.missing_consumption(truth, late, st["now_s"] - 30)
        p = alert_util.run(hoptrace, db, "ingest", late)
        check(p.returncode == 0, f"ingest late consumption: {p.stderr}")
        p = alert_util.run(hoptrace, db, "stalls", "--now", now, "--webhook", rcv.url(), "--format", "json")
        check(p.returncode == 0, f"after recovery exit {p.returncode}, want 0")
        posts = rcv.take()
        if len(posts) == 1:
            body = json.loads(posts[0][2])
            check(body["status"] == "resolved" and not firing(body) and not firing(body, "StreamStageLagging"),
                  "resolved after recovery")
            res = [a for a in body["alerts"] if a["labels"]["resource"] == st["resource"]
                   and a["labels"]["alertname"] == "StreamStageStalled"]
            check(len(res) == 1 and res[0]["status"] == "resolved" and res[0]["stage"]["pending"] == 0,
                  "the stage's alert is resolved")
        else:
            check(False, f"{len(posts)} POSTs after recovery, want 1")
    finally:
        rcv.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("webhook: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
