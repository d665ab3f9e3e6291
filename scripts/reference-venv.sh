#!/usr/bin/env bash
# Makes the Python environment of the reference libraries (transformers, open_clip) that tests/reference uses to
# write its fixtures: Debian's torch and torchvision (install-deps.sh) seen through --system-site-packages, plus
# the pinned PyPI packages of tests/reference/requirements.txt.
#   scripts/reference-venv.sh [DIR]      default DIR: <repo>/.venv-reference (git-ignored)
# Idempotent: a stamp of the requirements and constraints makes a second run instant; a change to either
# reinstalls.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${1:-$ROOT/.venv-reference}"
REQ="$ROOT/tests/reference/requirements.txt"
CON="$ROOT/tests/reference/constraints.txt"
STAMP="$DIR/.zeroshot-requirements"
want="$(cat "$REQ" "$CON" | sha256sum | cut -d' ' -f1)"
if [ -x "$DIR/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x "$DIR/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$DIR"
"$DIR/bin/pip" install -q --disable-pip-version-check -c "$CON" -r "$REQ"
"$DIR/bin/python" -c "import torch, torchvision, transformers, open_clip, safetensors" 2>/dev/null
echo "$want" >"$STAMP"
echo "reference-venv: $DIR"
