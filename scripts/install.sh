#!/usr/bin/env bash
# Installs Supportbot into ./.venv on a fresh machine (idempotent; a second run is quick).
# Usage: scripts/install.sh [EXTRAS], e.g. `scripts/install.sh dev` or `scripts/install.sh dev,bench`.
#
# torch comes first, pinned to the local CPU wheel: pyproject.toml does not name it (the code
# never imports it; sentence-transformers does), and once it is installed no resolver fetches a
# multi-GB CUDA build instead. Every other version is pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="2.13.0"
extras="${1:-}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==${TORCH_VERSION}"
python -m pip install -q -c constraints.txt -e ".${extras:+[$extras]}"
