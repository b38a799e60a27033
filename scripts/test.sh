#!/usr/bin/env bash
# Fresh machine -> all checks: install (with dev tools and Chromium), lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; browser tests will be skipped"
fi
. .venv/bin/activate
export HF_HUB_OFFLINE=1
echo "== ruff lint";   ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy";        mypy bot ingest
echo "== pytest";      pytest -q -p no:cacheprovider "$@"
