#!/bin/bash
# Generate a payments corpus, ingest it into a fresh store and hold hoptrace
# against its truth.  usage: check_corpus.sh HOPTRACE N SEED [STREAM_BATCH]
#   1. tests/corpus/gen_corpus.py --requests N --seed SEED --stream-batch K
#   2. derive_truth.py: the truth agrees with the raw documents (self-check)
#   3. HOPTRACE --db TMP/db ingest segments.ndjson logs-cwl.ndjson logs-kinesis.json
#   4. check_traces.py (shared/tools, else tests/corpus's own copy) on truth.json
#   5. with K>1: check_extra.py on truth-extra.json (batched stream consumers)
# Exit 0 only if every step is exact.  KEEP=1 keeps the temp folder.
set -u
[ $# -ge 3 ] || { echo "usage: $0 HOPTRACE N SEED [STREAM_BATCH]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
hop=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
n=$2 seed=$3 k=${4:-1}
[ -x "$hop" ] || { echo "no hoptrace binary at $1" >&2; exit 2; }
top=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || (cd "$here/../.." && pwd))
checker=$top/../shared/tools/check_traces.py
[ -f "$checker" ] || checker=$here/check_traces.py
work=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then echo "keeping $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
c=$work/corpus
rc=0
python3 "$here/gen_corpus.py" --requests "$n" --seed "$seed" --stream-batch "$k" --out "$c" || exit 1
python3 "$here/derive_truth.py" "$c" || { echo "FAIL: truth disagrees with the generated documents"; exit 1; }
"$hop" --db "$work/db" ingest "$c/segments.ndjson" "$c/logs-cwl.ndjson" "$c/logs-kinesis.json" 2>"$work/ingest.err" \
  || { echo "FAIL: ingest: $(tail -n 2 "$work/ingest.err")"; exit 1; }
echo "ingest: $(tail -n 1 "$work/ingest.err")"
echo "checker: $checker"
python3 "$checker" "$hop" "$work/db" "$c" || rc=1
if [ -f "$c/truth-extra.json" ]; then
  python3 "$here/check_extra.py" "$hop" "$work/db" "$c" || rc=1
fi
[ $rc = 0 ] && echo "PASS: N=$n seed=$seed stream-batch=$k" || echo "FAIL: N=$n seed=$seed stream-batch=$k"
exit $rc
