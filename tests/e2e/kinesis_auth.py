#!/usr/bin/env python3
"""Kinesis reader: clear errors for credentials, region, endpoint, stream.

usage: kinesis_auth.py HOPTRACE

Needs no kinesalite: a local proxy answers every call itself.
- credentials refused (400 UnrecognizedClientException) -> exit 2, a
  message about the credentials, no secret or token on stderr;
- no credentials at all (no env, no file) -> exit 2 naming the env vars and
  the file; a profile in AWS_SHARED_CREDENTIALS_FILE is used (the proxy
  sees its key id) and its secret never printed;
- no region -> exit 2; a bad --endpoint -> exit 2;
- ResourceNotFoundException -> exit 2 naming the stream;
- nothing listening, with --until-idle -> 10 network retries, then exit 5;
- without --until-idle, an outage longer than 10 attempts is retried
  (with a warning), and SIGTERM then ends the reader with exit 0;
- --help -> exit 0 naming the options.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "kinesis"))
import kinlib  # noqa: E402

SECRET = kinlib.DUMMY_ENV["AWS_SECRET_ACCESS_KEY"]
TOKEN = kinlib.DUMMY_ENV["AWS_SESSION_TOKEN"]


def run(hop, db, args, env, timeout=60):
    p = subprocess.run([hop, "--db", db, "ingest", "--kinesis", "s"] + args,
                       env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def main():
    hop = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="ht_kin_auth_")
    fails = []

    def expect(name, got, code, *words):
        rc, out = got
        bad = []
        if rc != code:
            bad.append("exit %d, want %d" % (rc, code))
        for w in words:
            if w not in out:
                bad.append("no %r in the output" % w)
        for s in (SECRET, TOKEN, "file-secret-not-to-print"):
            if s in out:
                bad.append("a secret was printed")
        print("%s: %s" % (name, "ok" if not bad else "; ".join(bad)))
        if bad:
            fails.append("%s: %s\n%s" % (name, "; ".join(bad), out[-800:]))

    refuse = kinlib.Proxy(None, fault=lambda op, body: (400, {
        "__type": "UnrecognizedClientException",
        "message": "The security token included in the request is invalid."}))
    # a real InvalidSignatureException quotes the canonical request, which
    # holds the session token: it must not reach the output
    badsig = kinlib.Proxy(None, fault=lambda op, body: (400, {
        "__type": "InvalidSignatureException",
        "message": "The request signature we calculated does not match the "
        "signature you provided. The Canonical String for this request "
        "should have been 'POST\\n/\\n\\ncontent-type:application/"
        "x-amz-json-1.1\\nx-amz-security-token:%s\\n'" % TOKEN}))
    missing = kinlib.Proxy(None, fault=lambda op, body: (400, {
        "__type": "ResourceNotFoundException",
        "message": "Stream s under account 000000000000 not found."}))
    try:
        db = os.path.join(work, "db")
        env = kinlib.hop_env({"HOPTRACE_KINESIS_BACKOFF_MS": "1"})
        expect("refused", run(hop, db, ["--endpoint", refuse.url,
                                        "--until-idle", "1"], env),
               2, "UnrecognizedClientException", "credentials")
        if not refuse.headers:
            fails.append("refused: the proxy saw no request")
        expect("bad signature", run(hop, db, ["--endpoint", badsig.url],
                                    env),
               2, "InvalidSignatureException", "x-amz-security-token:***")

        bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        bare["HOME"] = work
        bare["AWS_REGION"] = "us-east-1"
        expect("no credentials", run(hop, db, ["--endpoint", refuse.url],
                                     bare),
               2, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
               os.path.join(work, ".aws", "credentials"))

        cred = os.path.join(work, "creds")
        with open(cred, "w") as f:
            f.write("[default]\naws_access_key_id = AKIDWRONGPROFILE\n"
                    "aws_secret_access_key = x\n[ci]\n"
                    "aws_access_key_id = AKIDFROMFILE\n"
                    "aws_secret_access_key = file-secret-not-to-print\n")
        withfile = dict(bare, AWS_SHARED_CREDENTIALS_FILE=cred,
                        AWS_PROFILE="ci")
        n = len(refuse.headers)
        expect("profile", run(hop, db, ["--endpoint", refuse.url], withfile),
               2, "credentials")
        if not any("Credential=AKIDFROMFILE/" in h.get("Authorization", "")
                   for h in refuse.headers[n:]):
            fails.append("profile: the key of profile [ci] was not used")

        noregion = {k: v for k, v in env.items()
                    if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
        expect("no region", run(hop, db, ["--endpoint", refuse.url],
                                noregion), 2, "--region", "AWS_REGION")
        expect("bad endpoint", run(hop, db, ["--endpoint", "ftp://x"], env),
               2, "--endpoint")
        expect("no stream", run(hop, db, ["--endpoint", missing.url], env),
               2, "ResourceNotFoundException", "stream name")

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        expect("no service", run(hop, db, ["--endpoint",
                                           "http://127.0.0.1:%d" % port,
                                           "--until-idle", "5"],
                                 env), 5, "network", "--endpoint")

        # without --until-idle an outage is ridden out: 11 answers 503,
        # then an empty stream; SIGTERM ends the reader cleanly
        calls = []

        def outage(op, body):
            calls.append(op)
            if len(calls) <= 11:
                return 503, {"__type": "ServiceUnavailable",
                             "message": "down"}
            return 200, {"Shards": []}
        flaky = kinlib.Proxy(None, fault=outage)
        try:
            p = subprocess.Popen([hop, "--db", db, "ingest", "--kinesis", "s",
                                  "--endpoint", flaky.url], env=env,
                                 stderr=subprocess.PIPE, text=True)
            for _ in range(600):
                if len(calls) > 11 or p.poll() is not None:
                    break
                time.sleep(0.05)
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
        finally:
            flaky.stop()
        expect("outage", (p.returncode, err), 0,
               "still failing after 10 attempts", "ingested 0 documents")

        for args in (["--kinesis", "s", "--help"], ["--kinesis", "--help"]):
            p = subprocess.run([hop, "ingest"] + args, capture_output=True,
                               text=True)
            expect("help " + " ".join(args), (p.returncode, p.stdout), 0,
                   "--endpoint", "--until-idle", "--region", "--from",
                   "AWS_PROFILE")
    finally:
        refuse.stop()
        badsig.stop()
        missing.stop()
        shutil.rmtree(work, ignore_errors=True)
    for f in fails:
        print("FAIL: " + f)
    if fails:
        return 1
    print("PASS: kinesis errors are clear and secret-free")
    return 0


if __name__ == "__main__":
    sys.exit(main())
