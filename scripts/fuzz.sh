#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/; clang, ASan + UBSan) and runs each for a bounded time, JOBS at a time
# (each target is one process on one core).
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default 25 s per target, every target
#   scripts/fuzz.sh 600 image_fuzz           a longer local run of one target (see README, "Fuzzing")
# FUZZ_BUILD_DIR (default build-fuzz): a build directory already configured with -DZEROSHOT_FUZZ=ON is used as it
# is (scripts/test.sh points it at its ASan build, which is configured that way so that the library is compiled once
# for both); otherwise it is configured here.
# Corpora grow under <build>/fuzz/corpus/<target> (kept between runs; seeds are re-copied from the fixtures
# under ZEROSHOT_SHARED each time). A crash leaves its reproducer as <build>/fuzz/artifacts/<target>/crash-*
# (replay: <build>/fuzz/<target> <file>) and makes the script fail after the remaining targets have run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-25}"
shift || true
SHARED="${ZEROSHOT_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${JOBS:-$(nproc)}"
BUILD="${FUZZ_BUILD_DIR:-build-fuzz}"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi
if ! grep -qs '^ZEROSHOT_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZEROSHOT_FUZZ=ON \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    -DZEROSHOT_BUILD_BENCHMARKS=OFF -DZEROSHOT_BUILD_TESTS=OFF -DZEROSHOT_SHARED="$SHARED" -DZEROSHOT_FIXTURES="$SHARED/fixtures" "${launcher[@]}" >/dev/null
fi
cmake --build "$BUILD" --target fuzzers fuzz_seeds -j "$JOBS"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"  # known third-party leaks, each with its issue
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
out="$BUILD/fuzz"
run_target() {  # name dict options: one bounded run; its log in $out/<name>.log, its status in $out/<name>.status
  local name=$1 dict=$2 options=$3
  local corpus="$out/corpus/$name"
  mkdir -p "$corpus" "$out/artifacts/$name"
  local args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
              -artifact_prefix="$out/artifacts/$name/")
  if [ "$dict" != "-" ]; then args+=(-dict="$dict"); fi
  # FUZZ_SEED: libFuzzer's mutation seed (CI fixes it, so a green smoke run is the run CI repeats; unset: random).
  if [ -n "${FUZZ_SEED:-}" ]; then args+=(-seed="$FUZZ_SEED"); fi
  # shellcheck disable=SC2206  # the target's own libFuzzer flags (fuzz/CMakeLists.txt OPTIONS), split on purpose
  args+=($options)
  # TMPDIR: the scratch files of targets that read from a path (fuzz/fuzz_util.h), removed afterwards.
  local scratch
  scratch=$(mktemp -d)
  local status=0
  TMPDIR="$scratch" "$out/$name" "${args[@]}" "$corpus" "$out/seeds/$name" >"$out/$name.log" 2>&1 || status=$?
  rm -rf "$scratch"
  echo "$status" >"$out/$name.status"
}
names=()
running=0
while read -r name dict options; do
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  names+=("$name")
  rm -f "$out/$name.status"
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  echo "fuzz: $name (${SECONDS_EACH} s)"
  run_target "$name" "$dict" "$options" &
  running=$((running + 1))
done <"$out/fuzzers.txt"
wait
failed=()
for name in "${names[@]}"; do
  if [ "$(cat "$out/$name.status" 2>/dev/null)" != 0 ]; then
    failed+=("$name")
    echo "fuzz: $name FAILED:"
    tail -n 60 "$out/$name.log"
  else
    echo "fuzz: $name: $(grep -E "^stat::(number_of_executed_units|new_units_added)" "$out/$name.log" | tr '\n' ' ')"
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers under $out/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ok"
