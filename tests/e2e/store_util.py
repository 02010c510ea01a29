"""What the e2e tests of one store's writers share: running hoptrace with
its output captured, failing with a message, and the corpus files
`hoptrace simulate` writes, in the order ingest takes them."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "..", "corpus", "check_traces.py")
FILES = ["segments.ndjson", "logs-cwl.ndjson", "logs-kinesis.json"]


def run(cmd, **kw):
    """cmd with stdout and stderr captured as text, at most 10 minutes."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


def fail(msg):
    """Prints FAIL: msg and exits 1."""
    print(f"FAIL: {msg}")
    sys.exit(1)
