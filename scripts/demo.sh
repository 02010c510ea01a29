#!/usr/bin/env bash
# hoptrace demo: install dependencies, build, ingest fixtures/demo/ into a
# fresh store ./demo.db, then show one request's path hop by hop.
#
#   scripts/demo.sh
#
# Leaves behind: build/hoptrace, demo.db/ (the store), demo.dot and, when
# Graphviz is installed, demo.svg.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR=build
DB=demo.db
FIXTURE=fixtures/demo
HOPTRACE="$BUILD_DIR/hoptrace"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

step "Checking dependencies (scripts/setup.sh)"
bash scripts/setup.sh

step "Building hoptrace into $BUILD_DIR/"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHT_WERROR=ON >/dev/null
cmake --build "$BUILD_DIR" -j2
[[ -x "$HOPTRACE" ]] || die "$HOPTRACE was not built"

[[ -d "$FIXTURE" ]] || die "$FIXTURE/ not found: the demo data is missing from this checkout"
[[ -f "$FIXTURE/expected.json" ]] || die "$FIXTURE/expected.json not found"

step "Ingesting $FIXTURE/ into a fresh store ./$DB"
rm -rf -- "$DB"
# The telemetry files; expected.json beside them is the answer key.
mapfile -t inputs < <(find "$FIXTURE" -maxdepth 1 -type f ! -name expected.json | sort)
"$HOPTRACE" --db "$DB" ingest "${inputs[@]}"

# Pick the first request with the most async hops; print its API Gateway
# request id, then (for the hints at the end) one other id of the same request.
mapfile -t picked < <(python3 - "$FIXTURE/expected.json" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    doc = json.load(f)
reqs = doc.get("requests") or []
if not reqs:
    sys.exit("expected.json lists no requests")

def nhops(r):
    h = r.get("hops", 0)
    return len(h) if isinstance(h, (list, dict)) else int(h or 0)

best = max(reqs, key=nhops)          # max() keeps the first among equals
ids = best.get("ids") or {}
main = ids.get("apigw") or next((v for v in ids.values() if isinstance(v, str)), None)
if not main:
    sys.exit("request %r has no ids" % best.get("name"))
other_kind, other = "", ""
for kind in ("sqs", "correlation", "corr", "kinesis", "ddb", "lambda", "xray"):
    v = ids.get(kind)
    if isinstance(v, list):
        v = v[0] if v else None
    if isinstance(v, str) and v != main:
        other_kind, other = kind, v
        break
print(main)
print(best.get("name", "?"))
print(nhops(best))
print(other_kind)
print(other)
PY
)
(( ${#picked[@]} >= 3 )) || die "could not pick a request from $FIXTURE/expected.json"
ID="${picked[0]}" NAME="${picked[1]}" HOPS="${picked[2]}"
OTHER_KIND="${picked[3]:-}" OTHER="${picked[4]:-}"

step "Request \"$NAME\" ($HOPS async hops): hoptrace trace $ID"
"$HOPTRACE" --db "$DB" trace "$ID"

step "Writing the causal graph"
"$HOPTRACE" --db "$DB" trace "$ID" --format dot >demo.dot
echo "wrote demo.dot"
if command -v dot >/dev/null 2>&1; then
  dot -Tsvg demo.dot -o demo.svg
  echo "wrote demo.svg (open it in a browser)"
else
  echo "Graphviz 'dot' not found: skipped demo.svg (apt-get install graphviz)"
fi

cat <<HINT

==> Try next
  # the same request as JSON (spans, hops, critical path):
  $HOPTRACE --db $DB trace $ID --format json
HINT
if [[ -n "$OTHER" ]]; then
  cat <<HINT
  # any id of the request finds it, e.g. its ${OTHER_KIND} id:
  $HOPTRACE --db $DB trace $OTHER
HINT
fi
cat <<HINT
  # other requests: see the ids in $FIXTURE/expected.json
  # (API Gateway / Lambda request ids, X-Ray trace ids, SQS message ids, ...)
  $HOPTRACE --help

==> See it in a browser: serve the store (web view, JSON API, Jaeger API,
    /metrics; loopback only), then open this request's page
  $HOPTRACE --db $DB serve
  http://127.0.0.1:8418/trace/$ID
HINT
