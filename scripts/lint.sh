#!/usr/bin/env bash
# Checks the format (.clang-format) and the lint (.clang-tidy) of C++ files; exits non-zero on any finding.
#   scripts/lint.sh                     every tracked C++ file
#   scripts/lint.sh FILE...             these files
#   scripts/lint.sh --format [FILE...]  format only (fast; no build needed)
#   scripts/lint.sh --tidy [FILE...]    lint only
#   scripts/lint.sh --check             CI (scripts/test.sh): the format of every tracked C++ file, and the lint of
#                                       the translation units under src/ tools/ tests/support/ bench/, warnings
#                                       as errors (fuzz/ is clang-only: not in the Release compile database)
# clang-tidy reads compile_commands.json from $LINT_BUILD_DIR (default build/, which scripts/test.sh configures);
# headers are checked through the .cpp files that include them. To fix the format: clang-format -i FILE...
set -euo pipefail
cd "$(dirname "$0")/.."
do_format=1
do_tidy=1
tidy_scope='.*'
case "${1:-}" in
  --format) do_tidy=0; shift ;;
  --tidy) do_format=0; shift ;;
  --check) tidy_scope='^(src|tools|tests/support|bench)/'; shift ;;
esac
BUILD="${LINT_BUILD_DIR:-build}"
JOBS="${JOBS:-$(nproc)}"
if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cc' '*.hpp'); fi
# Generated files are what their generator writes (a test diffs them against it): not formatted, not linted.
kept=()
for f in "${files[@]}"; do head -n 1 "$f" | grep -q '^// GENERATED' || kept+=("$f"); done
files=("${kept[@]}")
status=0
if [ $do_format = 1 ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
      echo "format: $f (clang-format -i $f)"
      bad=$((bad + 1))
    fi
  done
  echo "format: $bad of ${#files[@]} files need clang-format"
  [ $bad = 0 ] || status=1
fi
if [ $do_tidy = 1 ]; then
  if [ ! -f "$BUILD/compile_commands.json" ]; then
    echo "lint: no $BUILD/compile_commands.json (configure the build first, or set LINT_BUILD_DIR)" >&2
    exit 2
  fi
  sources=()
  for f in "${files[@]}"; do
    [[ "$f" =~ $tidy_scope ]] || continue
    # Only translation units in the compile database (headers are reached through them).
    case "$f" in *.cpp | *.cc) grep -q "\"file\": \".*/$f\"" "$BUILD/compile_commands.json" && sources+=("$f") ;; esac
  done
  log=$(mktemp)
  start=$(date +%s)
  # One file per call, so that the slow translation units (the tests with gtest and json) spread over the jobs.
  printf '%s\n' "${sources[@]}" |
    xargs -r -P "$JOBS" -n 1 clang-tidy -p "$BUILD" --quiet --warnings-as-errors='*' 2>/dev/null >"$log" || true
  echo "tidy: ${#sources[@]} files in $(($(date +%s) - start)) s on $JOBS jobs"
  # A header's warning appears once per .cpp that includes it: count each distinct one once.
  warnings=$(grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error):' "$log" | sort -u || true)
  n=$(printf '%s' "$warnings" | grep -c . || true)
  if [ "$n" -gt 0 ]; then
    printf '%s\n' "$warnings"
    echo "tidy: $n findings in $(printf '%s\n' "$warnings" | cut -d: -f1 | sort -u | wc -l) files (of ${#sources[@]} checked)"
    status=1
  else
    echo "tidy: clean (${#sources[@]} files)"
  fi
  rm -f "$log"
fi
exit $status
