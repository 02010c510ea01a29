#!/usr/bin/env python3
"""The command line's small promises (issue 12 items 9 and 10).

usage: cli_text.py HOPTRACE

- Text output of stalls, metrics, stats and dlq never writes a control
  character that came from the data: a service name or a dead letter's
  detail with an escape sequence is shown escaped.
- `hoptrace bogus` lists every command; `--db` without a value says the
  value is missing; `-vv` is accepted; the top-level --help lists every
  command and names --kafka, --udp, --kinesis and --durable.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def run(hoptrace, *args):
    return subprocess.run([hoptrace, *args], capture_output=True, timeout=120)


def no_controls(what, data):
    bad = sorted({b for b in data if (b < 0x20 and b not in (0x0a, 0x09)) or b == 0x7f})
    check(not bad, f"{what}: control bytes {bad} in {data[:300]!r}")
    # C1 controls as UTF-8 (U+0080..U+009F)
    check(not any(data[i] == 0xC2 and 0x80 <= data[i + 1] <= 0x9F for i in range(len(data) - 1)),
          f"{what}: a C1 control character in the output")


COMMANDS = ["ingest", "trace", "stats", "dlq", "simulate", "stalls", "metrics",
            "endpoints", "hotspots", "functions", "refresh", "help"]


def main():
    hoptrace = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="ht_cli_")
    try:
        esc, csi = "\u001b[31m", "\u009b2J"
        fn = f"evil{esc}fn{csi}"
        docs = [
            # a producer whose service name carries escape sequences, never consumed
            {"trace_id": "1-6b083520-000000000000000000000001", "id": "1000000000000001",
             "name": fn, "origin": "AWS::Lambda::Function", "start_time": 1795700000.0,
             "end_time": 1795700000.5, "subsegments": [{
                 "id": "2000000000000001", "name": "SQS", "namespace": "aws",
                 "start_time": 1795700000.1, "end_time": 1795700000.2,
                 "aws": {"operation": "SendMessage", "message_id": "m-1",
                         "queue_url": f"https://sqs.us-east-1.amazonaws.com/1/q{esc}"}}]},
            # a dead letter whose detail quotes the bad id
            {"trace_id": "1-6b083520-000000000000000000000002", "id": f"\u001b[2J{csi}bad",
             "name": "x", "start_time": 1795700000.0, "end_time": 1795700001.0},
        ]
        path = os.path.join(tmp, f"in{esc}.ndjson")
        with open(path, "w") as f:
            for d in docs:
                f.write(json.dumps(d) + "\n")
        db = os.path.join(tmp, "db")
        p = run(hoptrace, "--db", db, "ingest", path)
        check(p.returncode == 0, f"ingest exit {p.returncode}: {p.stderr[:300]!r}")
        for args in (["stalls", "--now", "1795709999"], ["metrics", "--now", "1795709999"],
                     ["stats"], ["dlq"]):
            p = run(hoptrace, "--db", db, *args)
            check(p.returncode in (0, 4), f"{args[0]}: exit {p.returncode}")
            no_controls(args[0], p.stdout)
        p = run(hoptrace, "--db", db, "stalls", "--now", "1795709999")
        check(b"evil\\x1b[31mfn\\u009b2J" in p.stdout, f"stalls shows the name escaped: {p.stdout[:400]!r}")
        p = run(hoptrace, "--db", db, "dlq")
        check(b"\\x1b[2J" in p.stdout and b"in\\x1b[31m.ndjson" in p.stdout,
              f"dlq shows detail and source escaped: {p.stdout[:400]!r}")
        p = run(hoptrace, "--db", db, "stalls", "--now", "1795709999", "--format", "json")
        try:
            names = [g["producer"] for g in json.loads(p.stdout)["stages"]]
        except (ValueError, KeyError):
            names = []
        check(fn in names, f"JSON keeps the name as it is: {names!r}")

        # command-line papercuts
        p = run(hoptrace, "bogus")
        err = p.stderr.decode()
        check(p.returncode == 2 and all(c in err for c in COMMANDS),
              f"bogus lists every command: {err!r}")
        p = run(hoptrace, "--db")
        err = p.stderr.decode()
        check(p.returncode == 2 and "--db needs a value" in err and "unknown option" not in err,
              f"--db without a value: {err!r}")
        p = run(hoptrace, "--db=")
        check(p.returncode == 2 and "--db needs a value" in p.stderr.decode(), "--db= without a value")
        p = run(hoptrace, "-vv", "--db", db, "stats")
        check(p.returncode == 0, f"-vv accepted: {p.stderr[:200]!r}")
        p = run(hoptrace, "-vvx", "stats")
        check(p.returncode == 2, "-vvx is no verbosity")
        p = run(hoptrace, "--help")
        out = p.stdout.decode()
        check(p.returncode == 0, "--help exit 0")
        for word in COMMANDS[:-1] + ["--kafka", "--udp", "--kinesis", "--durable", "-vv"]:
            check(word in out, f"--help names {word}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        return 1
    print("cli: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
