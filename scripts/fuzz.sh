#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/; clang, ASan + UBSan) and runs each for a bounded time.
#   scripts/fuzz.sh [SECONDS] [TARGET...]    default 25 s per target, every target
#   scripts/fuzz.sh 600 image_fuzz           a longer local run of one target (see README, "Fuzzing")
# Corpora grow under build-fuzz/fuzz/corpus/<target> (kept between runs; seeds are re-copied from the fixtures
# under ZEROSHOT_SHARED each time). A crash leaves its reproducer as build-fuzz/fuzz/artifacts/<target>/crash-*
# (replay: build-fuzz/fuzz/<target> <file>) and makes the script fail after the remaining targets have run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-25}"
shift || true
SHARED="${ZEROSHOT_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${JOBS:-$(nproc)}"
BUILD="${FUZZ_BUILD_DIR:-build-fuzz}"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi
CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZEROSHOT_FUZZ=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  -DZEROSHOT_BUILD_BENCHMARKS=OFF -DZEROSHOT_BUILD_TESTS=OFF -DZEROSHOT_SHARED="$SHARED" -DZEROSHOT_FIXTURES="$SHARED/fixtures" "${launcher[@]}" >/dev/null
cmake --build "$BUILD" --target fuzzers fuzz_seeds -j "$JOBS"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0"  # known third-party leaks, each with its issue
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
out="$BUILD/fuzz"
failed=()
while read -r name dict options; do
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
  corpus="$out/corpus/$name"
  mkdir -p "$corpus" "$out/artifacts/$name"
  args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$out/artifacts/$name/")
  if [ "$dict" != "-" ]; then args+=(-dict="$dict"); fi
  # FUZZ_SEED: libFuzzer's mutation seed (CI fixes it, so a green smoke run is the run CI repeats; unset: random).
  if [ -n "${FUZZ_SEED:-}" ]; then args+=(-seed="$FUZZ_SEED"); fi
  # shellcheck disable=SC2206  # the target's own libFuzzer flags (fuzz/CMakeLists.txt OPTIONS), split on purpose
  args+=($options)
  echo "fuzz: $name (${SECONDS_EACH} s)"
  # TMPDIR: the scratch files of targets that read from a path (fuzz/fuzz_util.h), removed afterwards.
  scratch=$(mktemp -d)
  if ! TMPDIR="$scratch" "$out/$name" "${args[@]}" "$corpus" "$out/seeds/$name" >"$out/$name.log" 2>&1; then
    failed+=("$name")
    tail -n 60 "$out/$name.log"
  else
    grep -E "^stat::(number_of_executed_units|new_units_added)" "$out/$name.log" | tr '\n' ' '
    echo
  fi
  rm -rf "$scratch"
done <"$out/fuzzers.txt"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers under $out/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ok"
