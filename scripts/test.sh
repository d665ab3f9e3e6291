#!/usr/bin/env bash
# Builds and runs every test: a Release build (gcc), then an AddressSanitizer + UndefinedBehaviorSanitizer build
# with clang and a libFuzzer smoke run of every target in fuzz/ on it (scripts/fuzz.sh, FUZZ_SECONDS each, default
# 20), then a ThreadSanitizer build with clang (the tests labelled `threads`). After the Release stage:
# scripts/lint.sh --check (format + lint; SKIP_LINT=1 skips it).
#   scripts/test.sh            all four stages
#   scripts/test.sh --fast     the Release build (and the lint check) only
# Fixtures are read from ../shared (set ZEROSHOT_SHARED to override); nothing is copied into the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${ZEROSHOT_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${JOBS:-$(nproc)}"
# ccache, when installed, for every build below (CMake reads these as the launchers' defaults).
if [ -z "${CMAKE_CXX_COMPILER_LAUNCHER:-}" ] && command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=ccache CMAKE_C_COMPILER_LAUNCHER=ccache
fi
scripts/reference-venv.sh  # transformers + open_clip for tests/reference (quick when already made)
run_suite() {  # build-dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DZEROSHOT_SHARED="$SHARED" -DZEROSHOT_FIXTURES="$SHARED/fixtures" "$@" >/dev/null
  # shellcheck disable=SC2086  # BUILD_TARGETS: "--target a b" or nothing (everything)
  cmake --build "$dir" -j "$JOBS" ${BUILD_TARGETS:-}
  # shellcheck disable=SC2086  # CTEST_ARGS: extra ctest arguments, word-split on purpose
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" --timeout 900 ${CTEST_ARGS:-})
}
# Position-independent, so that scripts/test-python.sh builds the wheel's module in this tree and links the engine's
# libraries from it instead of compiling the engine again (ZEROSHOT_WHEEL_BUILD_DIR); the Python targets are off here
# (the wheel's build turns them on with its own nanobind).
run_suite build -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DZEROSHOT_BUILD_PYTHON=OFF
# Format and lint (.clang-format, .clang-tidy; warnings are errors) over the Release build's compile database.
if [ "${SKIP_LINT:-0}" != 1 ]; then LINT_BUILD_DIR=build JOBS="$JOBS" scripts/lint.sh --check; fi
if [ "${1:-}" != "--fast" ]; then
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  # AddressSanitizer + UndefinedBehaviorSanitizer with clang, the library instrumented for libFuzzer as well
  # (-DZEROSHOT_FUZZ=ON: ASan + UBSan + coverage counters): the tests and the fuzz targets below share one compile of
  # the engine instead of two. -g1 (line tables: file:line in every report) and no bench/ keep the compile short;
  # clang at -O2 compiles this tree faster than gcc at -O1 (server.cpp: 20.5 s against 23.7 s of CPU).
  # Minus the tests labelled `reference` (tests/CMakeLists.txt): Python-peer checks the Release stage ran, whose C++
  # other tests run here.
  CTEST_ARGS="${CTEST_ARGS:-} -LE reference" CC=clang CXX=clang++ run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    -DZEROSHOT_FUZZ=ON -DZEROSHOT_BUILD_BENCHMARKS=OFF
  # The libFuzzer smoke run, on the ASan build above, JOBS targets at a time.
  FUZZ_BUILD_DIR=build-asan ZEROSHOT_SHARED="$SHARED" JOBS="$JOBS" FUZZ_SEED="${FUZZ_SEED:-1}" \
    scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
  # ThreadSanitizer, with clang: the tests that run threads (cmake/ZeroshotTest.cmake) and the CLI they start.
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
  # (Minus the config-refusal and huge-input tests: single-threaded, and a fifth of the TSan test time.)
  BUILD_TARGETS="--target zeroshot_thread_tests zeroshot_cli" CC=clang CXX=clang++ \
    CTEST_ARGS="-L threads -E (Refusals|HugeInputFinishes)" \
    run_suite build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    -DZEROSHOT_SANITIZE_THREAD=ON -DZEROSHOT_BUILD_BENCHMARKS=OFF
fi
# The Python package: wheel, fresh virtualenv, pytest (scripts/test-python.sh); uses the Release build's CLI.
ZEROSHOT_WHEEL_BUILD_DIR=build bash scripts/test-python.sh
