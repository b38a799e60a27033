#!/usr/bin/env bash
# Installs Supportbot into ./.venv on a fresh machine (idempotent; a second run is quick).
# torch comes first, from the local CPU wheel: any later resolver then keeps it instead of
# fetching a multi-GB CUDA build. Versions are pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -c constraints.txt -e ".${extras:+[$extras]}"
