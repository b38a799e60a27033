"""Fixtures shared by the integration tests that read the demo knowledge base."""

from __future__ import annotations

import pytest

from bot.core.settings import Settings
from bot.knowledge.answerers import ExtractiveAnswerer, build_answerer
from ingest.embedder import Embedder
from tests.conftest import KB_DIR
from tests.helpers.kb import open_kb


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    """The demo KB (``kb_articles/``) indexed into a fresh data dir, on the shipped defaults."""
    from ingest.pipeline import index_paths

    data = tmp_path_factory.mktemp("demo-kb") / "data"
    settings = Settings(data_dir=data, kb_path=KB_DIR, _env_file=None)  # type: ignore[call-arg]
    report = index_paths([KB_DIR], settings, embedder)
    assert report.ok, report.as_dict()
    return settings


@pytest.fixture(scope="module")
def demo_answerer(demo_settings: Settings, embedder: Embedder) -> ExtractiveAnswerer:
    """The product's answerer (no LLM configured) over the demo KB."""
    built = build_answerer(demo_settings, open_kb(demo_settings, embedder), embedder)
    assert isinstance(built, ExtractiveAnswerer)
    return built
