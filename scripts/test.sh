#!/usr/bin/env bash
# Fresh machine -> all checks: install (with dev tools and Chromium), lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"  # the browser tests
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx"  # deploy/nginx.conf
if [ -n "$missing" ]; then
    echo "installing$missing for the browser and deployment tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
        || echo "warning: could not install$missing; their tests will be skipped"
fi
. .venv/bin/activate
export HF_HUB_OFFLINE=1
echo "== ruff lint";   ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy";        mypy bot ingest
if [ -n "${SUPPORTBOT_REQUIRE_SHARED_ENGINES:-}" ]; then
    echo "== PostgreSQL and Redis (tests/scale)"; python -m tests.helpers.servers
fi
echo "== pytest";      pytest -q -p no:cacheprovider "$@"
