#!/usr/bin/env bash
# Build the widget that sites embed: widget/supportbot.min.js from the readable source
# widget/supportbot.js, with esbuild pinned by scripts/widget-build/package-lock.json (kept out of
# widget/, whose every file ships in the wheel). Also vendors axe-core
# (same lock file) into tests/e2e/vendor/axe.min.js for the accessibility tests, so those run
# offline. Commit both outputs: the service and the wheel serve the committed min file, and
# tests/integration/test_widget_delivery.py fails when it was not rebuilt after a source edit
# (the banner records the source's sha256).
#
#   scripts/build_widget.sh          # npm ci (first time), then build
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/scripts/widget-build"
if [ ! -x "$tools/node_modules/.bin/esbuild" ] || [ ! -f "$tools/node_modules/axe-core/axe.min.js" ]; then
  (cd "$tools" && npm ci --no-audit --no-fund)
fi
cd "$root/widget"

# The first 32 hex digits of the source's SHA-256: enough to tell a stale build, few bytes.
source_hash="$(sha256sum supportbot.js | cut -c1-32)"
# --mangle-props: the private members (a leading "_") are renamed, which is most of the saving
# beyond whitespace; _ws stays named, as tests close the socket through it.
"$tools/node_modules/.bin/esbuild" supportbot.js \
  --minify --target=es2017 --charset=utf8 --legal-comments=none \
  --mangle-props='^_' --reserve-props='^_ws$' \
  --banner:js="/*! Supportbot widget, scripts/build_widget.sh from sha256:${source_hash} */" \
  --log-level=warning --outfile=supportbot.min.js

mkdir -p "$root/tests/e2e/vendor"
cp "$tools/node_modules/axe-core/axe.min.js" "$root/tests/e2e/vendor/axe.min.js"
cp "$tools/node_modules/axe-core/LICENSE" "$root/tests/e2e/vendor/axe.LICENSE.txt"
echo "$(wc -c < supportbot.min.js) bytes, $(gzip -9c supportbot.min.js | wc -c) gzipped: widget/supportbot.min.js"
