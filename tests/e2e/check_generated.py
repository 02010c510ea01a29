#!/usr/bin/env python3
"""Check that fixtures/ is exactly what fixtures/gen/gen_fixtures.py writes.

Part of the e2e tier (tests/e2e/). Regenerates every scenario into a temp
folder and compares bytes with the committed one, so a hand edit or a
generator change that was not re-run fails the build.
usage: check_generated.py FIXTURES_DIR [GENERATOR]
GENERATOR is a script in FIXTURES_DIR/gen (default gen_fixtures.py); only
the folders it writes are compared.
"""
import filecmp
import os
import subprocess
import sys
import tempfile


def files(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


def main():
    fx = os.path.abspath(sys.argv[1])
    gen = sys.argv[2] if len(sys.argv) > 2 else "gen_fixtures.py"
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(fx, "gen", gen), tmp],
                       check=True, stdout=subprocess.DEVNULL)
        want = files(tmp)
        have = {f for f in files(fx) if f.split(os.sep)[0] in {p.split(os.sep)[0] for p in want}}
        bad = sorted(want ^ have) + sorted(
            f for f in want & have
            if not filecmp.cmp(os.path.join(tmp, f), os.path.join(fx, f), shallow=False))
        for f in bad:
            print("fixtures/%s differs from the generator's output" % f)
        print("fixtures: %s" % ("up to date" if not bad else "%d files differ; run fixtures/gen/%s" % (len(bad), gen)))
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
