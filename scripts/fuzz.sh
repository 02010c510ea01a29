#!/usr/bin/env bash
# Fuzzes hoptrace's decoders and its write-and-query path with libFuzzer
# (clang), under AddressSanitizer and UndefinedBehaviorSanitizer.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds build-fuzz/ (clang, -DHT_FUZZ=ON), then runs each target (default:
# all of fuzz/CMakeLists.txt's) for SECONDS (default 60) seeded with its
# checked-in corpus and fixtures/. New inputs that reach new code go to
# build-fuzz/corpus/<target> (not the repository); a crash stops the target
# and leaves its input as build-fuzz/crash-<target>-*: add it to
# fuzz/corpus/<target>/ with the fix, so ctest replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(payload reader otlp logline pipeline http kinesis)

if ! command -v clang >/dev/null; then
  echo "fuzz.sh: needs clang with libFuzzer (Debian: apt-get install clang)" >&2
  exit 2
fi
flags="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
cmake -S . -B build-fuzz -DHT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null

# seeds: every fixture file; for the pipeline each fixture's files joined,
# so its segments and logs stitch (what `fuzz_pipeline --join` replays)
seeds=()
for d in fixtures/*/; do seeds+=("$d"); done
mkdir -p build-fuzz/seeds/pipeline
for d in fixtures/*/; do
  files=()
  for f in "$d"*; do
    case $f in */expected.json) ;; *) [ -f "$f" ] && files+=("$f") ;; esac
  done
  [ ${#files[@]} -gt 0 ] && cat "${files[@]}" >"build-fuzz/seeds/pipeline/$(basename "$d")"
done
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/corpus/$t"
  extra=()
  case $t in
  payload | reader) extra=("${seeds[@]}") ;;
  pipeline) extra=(build-fuzz/seeds/pipeline) ;;
  esac
  echo "== fuzz_$t for ${secs}s"
  if ! (cd build-fuzz && UBSAN_OPTIONS=print_stacktrace=1 \
      "./fuzz/fuzz_$t" -max_total_time="$secs" -max_len=65536 \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="crash-$t-" "corpus/$t" "../fuzz/corpus/$t" \
      "${extra[@]/#/../}" 2>&1 | grep -E "^(#[0-9]+ +DONE|==[0-9]+==ERROR|SUMMARY|stat::number_of_executed_units|stat::peak_rss_mb|artifact_prefix|Test unit written)|runtime error" ); then
    :
  fi
  if ls build-fuzz/crash-"$t"-* >/dev/null 2>&1; then
    echo "fuzz_$t: crashed; inputs: $(ls build-fuzz/crash-"$t"-*)" >&2
    status=1
  fi
done
exit $status
