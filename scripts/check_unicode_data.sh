#!/usr/bin/env bash
# Regenerates src/text/unicode_data_generated.cpp with scripts/gen_unicode_data.py and fails when the committed
# table differs: the table must always be what its generator makes. The tables are Python's own Unicode data, so
# a Python whose Unicode version differs from the committed one cannot check it: exit 77 (skipped) then.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-/usr/bin/python3}"
committed="$root/src/text/unicode_data_generated.cpp"
want=$(sed -n '1s/.*(Unicode \([0-9.]*\)).*/\1/p' "$committed")
have=$("$py" -c 'import unicodedata; print(unicodedata.unidata_version)')
if [ "$want" != "$have" ]; then
  echo "skipped: $py has Unicode $have, the committed table was made with Unicode $want"
  exit 77
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$py" "$root/scripts/gen_unicode_data.py" > "$tmp"
# The first line names the Python version that made it; the data below must be identical.
if ! diff <(tail -n +2 "$committed") <(tail -n +2 "$tmp") > /dev/null; then
  echo "src/text/unicode_data_generated.cpp is not what scripts/gen_unicode_data.py makes; regenerate it:" >&2
  echo "  $py scripts/gen_unicode_data.py > src/text/unicode_data_generated.cpp" >&2
  diff <(tail -n +2 "$committed") <(tail -n +2 "$tmp") | head -20 >&2
  exit 1
fi
echo "unicode_data_generated.cpp matches its generator (Unicode $have)"
