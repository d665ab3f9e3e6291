#!/usr/bin/env bash
# Builds and runs every test: a Release build, then an AddressSanitizer + UndefinedBehaviorSanitizer build.
#   scripts/test.sh            both builds
#   scripts/test.sh --fast     the Release build only
# Fixtures are read from ../shared (set ZEROSHOT_SHARED to override); nothing is copied into the repo.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${ZEROSHOT_SHARED:-$(cd .. && pwd)/shared}"
JOBS="${JOBS:-$(nproc)}"
scripts/reference-venv.sh  # transformers + open_clip for tests/reference (quick when already made)
run_suite() {  # build-dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DZEROSHOT_SHARED="$SHARED" -DZEROSHOT_FIXTURES="$SHARED/fixtures" "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
  (cd "$dir" && ctest --output-on-failure -j "$JOBS" --timeout 900)
}
run_suite build -DCMAKE_BUILD_TYPE=Release
if [ "${1:-}" != "--fast" ]; then
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  run_suite build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZEROSHOT_SANITIZE=ON
fi
# The Python package: wheel, fresh virtualenv, pytest (scripts/test-python.sh); uses the Release build's CLI.
bash scripts/test-python.sh
