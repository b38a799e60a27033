#!/usr/bin/env bash
# Fresh machine -> running product: install, ingest the demo KB, serve it on http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
supportbot ingest kb_articles
exec supportbot serve "$@"
