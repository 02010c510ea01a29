#!/usr/bin/env bash
# bench-serve.sh - the speed of `hoptrace serve` (issue 13): GET
# /api/v1/trace/{id} on the 5,000-request store (simulate --seed 42), 16
# connections from wrk, rotating over every id of every request (API
# Gateway, Lambda and X-Ray trace ids, message ids, sequence numbers).
# Target: p99 <= 5 ms and >= 5,000 answers/s on the 2-core machine.
#
#   scripts/bench-serve.sh [BUILD_DIR] [--requests N] [--duration S]
#                          [--threads N] [--connections N] [--keep]
#
# Prints wrk's figures and one summary line; exit 0 measured (a missed
# target is a result, said as FAIL), 1 a step failed, 77 wrk missing.
set -euo pipefail

BUILD=build
REQUESTS=5000
DURATION=10
THREADS="$(nproc)" # serve's own default: one per core
CONNS=16
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --requests) REQUESTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "bench-serve: unknown option $1" >&2; exit 2 ;;
    *) BUILD=$1; shift ;;
  esac
done
HOPTRACE=$BUILD/hoptrace
[[ -x $HOPTRACE ]] || { echo "bench-serve: no $HOPTRACE (build first)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "SKIP: wrk is not installed (Debian package wrk)"; exit 77; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-serve.XXXXXX")
PID=
cleanup() {
  [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  [[ $KEEP == 1 ]] && echo "bench-serve: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

"$HOPTRACE" simulate --seed 42 --requests "$REQUESTS" --out "$WORK/corpus" >/dev/null
"$HOPTRACE" --db "$WORK/db" ingest -q "$WORK/corpus"

# every id of every request, as a Lua table; each wrk thread starts at its
# own offset and walks the table
python3 - "$WORK/corpus/truth.json" "$WORK/ids.lua" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
ids = []
for r in t["requests"]:
    ids += [v for v in r.values() if isinstance(v, str)]
    ids += r.get("trace_ids", [])
ids = list(dict.fromkeys(ids))
with open(sys.argv[2], "w") as f:
    f.write("ids = {\n" + ",\n".join(json.dumps(i) for i in ids) + "}\n")
    f.write("""
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
function init(args)
  n = offset or 0
end
function request()
  n = n + 1
  return wrk.format("GET", "/api/v1/trace/" .. ids[(n % #ids) + 1])
end
""")
print(len(ids), file=sys.stderr)
EOF

"$HOPTRACE" --db "$WORK/db" serve --listen 127.0.0.1:0 --threads "$THREADS" 2>"$WORK/serve.err" &
PID=$!
for _ in $(seq 100); do
  grep -q 'serving http://' "$WORK/serve.err" && break
  sleep 0.1
done
URL=$(grep -o 'http://[^/]*' "$WORK/serve.err" | head -1)
[[ -n $URL ]] || { cat "$WORK/serve.err" >&2; exit 1; }
# warm the page cache the way a running server's would be
curl -fsS "$URL/api/v1/stats" >/dev/null

# serve's CPU time (user + system, clock ticks) around the run: CPU per
# answer does not depend on what else the machine is doing
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
echo "wrk -t2 -c$CONNS -d${DURATION}s --latency -s ids.lua $URL (serve --threads $THREADS, $REQUESTS requests)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
CPU0=$(cpu_ticks)
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/ids.lua" "$URL" | tee "$WORK/wrk.out"
CPU1=$(cpu_ticks)

python3 - "$WORK/wrk.out" "$((CPU1 - CPU0))" "$(getconf CLK_TCK)" <<'EOF'
import re, sys
out = open(sys.argv[1]).read()
def ms(v, unit):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
err = re.search(r"Socket errors:.*", out)
p99 = ms(*p99.groups()); p50 = ms(*p50.groups()); rps = float(rps.group(1))
total = int(re.search(r"(\d+) requests in", out).group(1))
cpu_us = int(sys.argv[2]) / int(sys.argv[3]) * 1e6 / max(total, 1)
ok = p99 <= 5.0 and rps >= 5000 and not bad
print(f"serve trace: {rps:.0f} answers/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms"
      f", serve CPU {cpu_us:.0f} us/answer"
      f"{', non-2xx ' + bad.group(1) if bad else ''}"
      f"{', ' + err.group(0) if err else ''}"
      f" -> {'PASS' if ok else 'FAIL'} (target p99 <= 5 ms, >= 5000/s)")
EOF
