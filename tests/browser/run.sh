#!/usr/bin/env bash
# ctest entry of the browser test: installs playwright-core (pinned by package-lock.json) into the BUILD folder with
# `npm ci`, then runs web_page_test.mjs. Exit 77 (skipped) only when node/npm or /usr/bin/chromium are missing.
# Never downloads a browser: Debian's chromium is used.
set -euo pipefail
build="$1" src="$2" fixtures="$3"
here="$src/tests/browser"
for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then echo "SKIP: $tool not installed (apt-get install nodejs npm)"; exit 77; fi
done
if [ ! -x /usr/bin/chromium ]; then echo "SKIP: /usr/bin/chromium not installed (apt-get install chromium)"; exit 77; fi
work="$build/browser-test"
mkdir -p "$work"
cp "$here/package.json" "$here/web_page_test.mjs" "$work/"
if ! cmp -s "$here/package-lock.json" "$work/package-lock.json" || [ ! -d "$work/node_modules/playwright-core" ]; then
  cp "$here/package-lock.json" "$work/"
  (cd "$work" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# A small index for the search box: four fixture photos.
model="$fixtures/clip/clip-tiny-quickgelu"
rm -rf "$work/photos" "$work/index.db"*
mkdir -p "$work/photos"
cp "$fixtures/images/astronaut.png" "$fixtures/images/coffee.png" "$fixtures/images/rocket.jpg" \
   "$fixtures/images/chelsea.png" "$work/photos/"
HF_HUB_OFFLINE=1 "$build/zeroshot" index -m "$model" --db "$work/index.db" -q "$work/photos" >/dev/null
cd "$work"
exec node web_page_test.mjs "$build/zeroshot" "$model" "$fixtures/images/astronaut.png" "$build/server_web_page.png" \
  "$work/index.db"
