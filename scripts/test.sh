#!/usr/bin/env bash
# Whole hoptrace test suite, as CI runs it:
#   1. build/       RelWithDebInfo, -Werror          -> ctest (all labels)
#   2. build-asan/  Debug, ASan+UBSan, -Werror       -> ctest (all labels)
# Exits non-zero if any build or any test fails; both stages always run.
#
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      extra arguments go to both ctest runs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JOBS=2   # the project's machines (and CI's) have 2 cores
CTEST_ARGS=(--output-on-failure -j"$JOBS" --no-tests=error --timeout 600 "$@")

step() { printf '\n==> %s\n' "$*"; }

step "Checking dependencies (scripts/setup.sh)"
bash scripts/setup.sh

declare -a RESULTS=() SKIPS=()
TOTAL_PASS=0 TOTAL_FAIL=0 TOTAL_SKIP=0 FAILED=0

# run_stage NAME BUILD_DIR CMAKE_ARGS...
run_stage() {
  local name="$1" dir="$2"
  shift 2
  step "[$name] configure + build ($dir/)"
  if ! cmake -S . -B "$dir" "$@" || ! cmake --build "$dir" -j"$JOBS"; then
    RESULTS+=("$name: BUILD FAILED")
    FAILED=1
    return 0
  fi

  step "[$name] ctest"
  local log="$dir/ctest-output.log" rc=0
  ctest --test-dir "$dir" "${CTEST_ARGS[@]}" 2>&1 | tee "$log" || rc=$?
  # "NN% tests passed, F tests failed out of T": ctest counts a skipped
  # test (exit 77) among the T and not among the F; it is neither passed
  # nor failed here, and its reason (the SKIP line it printed) is shown
  local summary pass=0 fail=0 skip=0 total t
  summary="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n1 || true)"
  if [[ -n "$summary" ]]; then
    fail="$(sed -E 's/.* ([0-9]+) tests? failed out of.*/\1/' <<<"$summary")"
    total="$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$summary")"
    skip="$(grep -cE 'Test +#[0-9]+: .*\*\*\*Skipped' "$log" || true)"
    pass=$((total - fail - skip))
  fi
  for t in $(sed -nE 's/.*Test +#[0-9]+: ([^ ]+) .*\*\*\*Skipped.*/\1/p' "$log"); do
    SKIPS+=("$name: $t: $(awk -v t="$t" '$0 ~ ("Test: " t "$") {on = 1; next}
        on && /^SKIP/ {print; exit} on && /^<end of output>/ {exit}' \
        "$dir/Testing/Temporary/LastTest.log" 2>/dev/null)")
  done
  TOTAL_PASS=$((TOTAL_PASS + pass))
  TOTAL_FAIL=$((TOTAL_FAIL + fail))
  TOTAL_SKIP=$((TOTAL_SKIP + skip))
  if ((rc != 0)); then
    RESULTS+=("$name: TESTS FAILED (ctest exit $rc; $pass passed, $skip skipped, $fail failed)")
    FAILED=1
  else
    RESULTS+=("$name: ok ($pass passed, $skip skipped)")
  fi
}

run_stage release build \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHT_WERROR=ON

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run_stage asan build-asan \
  -DCMAKE_BUILD_TYPE=Debug -DHT_SANITIZE=ON -DHT_WERROR=ON

step "Summary"
for r in "${RESULTS[@]}"; do printf '  %s\n' "$r"; done
if ((${#SKIPS[@]})); then
  echo "skipped (not counted as passed):"
  for r in "${SKIPS[@]}"; do printf '  %s\n' "$r"; done
fi
if ((FAILED)); then
  echo "test.sh: FAILED"
else
  echo "test.sh: all stages passed"
fi
# Plain closing line, both ctest runs added up.
echo "total: $TOTAL_PASS passed, $TOTAL_SKIP skipped, $TOTAL_FAIL failed"
exit "$FAILED"
