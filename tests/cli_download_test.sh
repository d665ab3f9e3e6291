#!/usr/bin/env bash
# The user's first run: `zeroshot classify photo --labels ...` with no --model downloads the default model
# (openai/clip-vit-base-patch32, here served by tests/support/hf_server.py from a fixture) into the HF cache once;
# the second run makes no request; offline it still works; offline with an empty cache it says why.
#   cli_download_test.sh BUILD_DIR SOURCE_DIR FIXTURES_DIR
set -euo pipefail
build=$1 src=$2 fixtures=$3
tmp=$(mktemp -d)
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkfifo "$tmp/port"
python3 "$src/tests/support/hf_server.py" --repo "openai/clip-vit-base-patch32=$fixtures/clip/clip-tiny-quickgelu" \
  --log "$tmp/requests.log" >"$tmp/port" &
server_pid=$!
read -r port <"$tmp/port"
export XDG_CACHE_HOME="$tmp/cache" HF_HOME="$tmp/hf" HF_ENDPOINT="http://127.0.0.1:$port"
img="$fixtures/images/chelsea.png"

"$build/zeroshot" classify "$img" --labels "cat,dog,a red car" -f json >"$tmp/cold.json" 2>"$tmp/cold.err" || fail "cold run: $(cat "$tmp/cold.err")"
grep -q '"label": "cat"' "$tmp/cold.json" || fail "cold run printed no result"
snap=$(ls -d "$HF_HOME"/hub/models--openai--clip-vit-base-patch32/snapshots/*/)
for f in config.json model.safetensors vocab.json merges.txt preprocessor_config.json; do
  cmp -s "$snap/$f" "$fixtures/clip/clip-tiny-quickgelu/$f" || fail "$f in the cache differs from the served file"
done
[ -z "$(find "$HF_HOME" -name '*.incomplete')" ] || fail "a .incomplete file was left behind"
requests=$(wc -l <"$tmp/requests.log")
[ "$requests" -gt 0 ] || fail "the cold run made no request"

"$build/zeroshot" classify "$img" --labels "cat,dog,a red car" -f json >"$tmp/warm.json" 2>"$tmp/warm.err" || fail "warm run: $(cat "$tmp/warm.err")"
[ "$(wc -l <"$tmp/requests.log")" -eq "$requests" ] || fail "the warm run made requests"
cmp -s "$tmp/cold.json" "$tmp/warm.json" || fail "warm result differs from cold"

kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
HF_HUB_OFFLINE=1 "$build/zeroshot" classify "$img" --labels "cat,dog,a red car" -f json >"$tmp/offline.json" 2>&1 || fail "offline run with a cached model failed"
cmp -s "$tmp/cold.json" "$tmp/offline.json" || fail "offline result differs"

if HF_HOME="$tmp/empty" HF_HUB_OFFLINE=1 "$build/zeroshot" classify "$img" --labels cat,dog 2>"$tmp/missing.err"; then
  fail "offline run with an empty cache succeeded"
fi
[ "$(wc -l <"$tmp/missing.err")" -eq 1 ] || fail "offline error is not one line: $(cat "$tmp/missing.err")"
grep -q "openai/clip-vit-base-patch32" "$tmp/missing.err" || fail "offline error does not name the model"
grep -q "HF_HUB_OFFLINE" "$tmp/missing.err" || fail "offline error does not say why"
echo "cli_download_test: cold download ($requests requests), warm (0), offline ok, offline-missing error ok"
