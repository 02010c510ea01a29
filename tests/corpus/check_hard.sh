#!/bin/bash
# A payments corpus with every adversity of issue 12 mixed in, held against
# its exact truth.  usage: check_hard.sh HOPTRACE N SEED [STREAM_BATCH]
#   1. gen_corpus.py --link-only 0.3 --skew 0.15 --redeliver 0.15
#      --order shuffled (stale correlation keys are always in)
#   2. HOPTRACE --db TMP/db ingest segments.ndjson logs-cwl.ndjson logs-kinesis.json
#   3. check_hard.py: every hop per consumer attempt, duration, path from the
#      root, skew warnings, failed attempts off the path, ids of batches
# (derive_truth.py re-derives clean corpora only.)  KEEP=1 keeps the folder.
set -u
[ $# -ge 3 ] || { echo "usage: $0 HOPTRACE N SEED [STREAM_BATCH]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
hop=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
n=$2 seed=$3 k=${4:-1}
[ -x "$hop" ] || { echo "no hoptrace binary at $1" >&2; exit 2; }
work=$(mktemp -d)
if [ "${KEEP:-0}" = 1 ]; then echo "keeping $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
c=$work/corpus
python3 "$here/gen_corpus.py" --requests "$n" --seed "$seed" --stream-batch "$k" --out "$c" \
  --link-only 0.3 --skew 0.15 --redeliver 0.15 --order shuffled || exit 1
"$hop" --db "$work/db" ingest "$c/segments.ndjson" "$c/logs-cwl.ndjson" "$c/logs-kinesis.json" 2>"$work/ingest.err" \
  || { echo "FAIL: ingest: $(tail -n 2 "$work/ingest.err")"; exit 1; }
echo "ingest: $(tail -n 1 "$work/ingest.err")"
if python3 "$here/check_hard.py" "$hop" "$work/db" "$c"; then
  echo "PASS: hard corpus N=$n seed=$seed stream-batch=$k"
else
  echo "FAIL: hard corpus N=$n seed=$seed stream-batch=$k"
  exit 1
fi
