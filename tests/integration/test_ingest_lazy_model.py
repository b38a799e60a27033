"""An ingest loads the embedding model only when something must be chunked or embedded.

Loading torch and the weights is most of what an ingest with nothing to do used to cost. Here
the first ingest uses the session's embedder; afterwards constructing an ``Embedder`` raises, so
any ingest that still needs the model fails loudly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ingest.embedder as embedder_module
from bot.core.settings import Settings, get_settings
from ingest.embedder import Embedder, LazyEmbedder
from ingest.pipeline import delete_article, index_paths
from ingest.store import EmbedderMismatchError, open_client

ARTICLES = {
    "returns.md": "---\ntitle: Returns\n---\nReturn any item within 30 days for a refund.\n",
    "shipping.md": "---\ntitle: Shipping\n---\nStandard delivery takes three to five days.\n",
    "contact.txt": "Write to help@example.com. We answer within one business day.\n",
}


class ModelLoaded(AssertionError):
    """The embedding model was loaded although nothing needed it."""


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    root = tmp_path / "kb"
    root.mkdir()
    for name, text in ARTICLES.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def kb_settings(tmp_path: Path, kb: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", kb_path=kb, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
def indexed(kb_settings: Settings, embedder: Embedder) -> Settings:
    report = index_paths(None, kb_settings, embedder)
    assert len(report.added) == len(ARTICLES)
    return kb_settings


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, loading the model raises (the process-wide cache is emptied too)."""

    def refuse(self: Embedder, *args: Any, **kwargs: Any) -> None:
        raise ModelLoaded("the embedding model was loaded")

    monkeypatch.setattr(embedder_module, "_cache", {})
    monkeypatch.setattr(Embedder, "__init__", refuse)


@pytest.mark.usefixtures("no_model")
def test_an_unchanged_rerun_never_loads_the_model(indexed: Settings) -> None:
    model = LazyEmbedder(indexed.embedding_model, indexed.embedding_batch_size)
    report = index_paths(None, indexed, model)
    assert sorted(report.unchanged) == ["contact", "returns", "shipping"]
    assert not report.changed
    assert not model.loaded
    assert index_paths(None, indexed).unchanged  # the default embedder is just as lazy


@pytest.mark.usefixtures("no_model")
def test_deleting_needs_no_model(indexed: Settings, kb: Path) -> None:
    (kb / "contact.txt").unlink()
    assert index_paths(None, indexed).deleted == ["contact"]
    assert delete_article("returns", indexed) is True
    assert delete_article("returns", indexed) is False


def test_a_changed_article_loads_the_model(indexed: Settings, kb: Path, embedder: Embedder) -> None:
    (kb / "returns.md").write_text(ARTICLES["returns.md"] + "\nGift cards are not refunded.\n")
    loads: list[str] = []
    model = LazyEmbedder(indexed.embedding_model, on_load=loads.append)
    report = index_paths(None, indexed, model)
    assert report.updated == ["returns"]
    assert model.loaded
    assert model.load() is embedder  # the process-wide model, not a second copy
    assert loads == []  # already in memory: nothing to announce


def test_a_model_of_another_dimension_is_refused_before_any_write(
    kb_settings: Settings, embedder: Embedder
) -> None:
    """The lazy open trusts the collection's recorded model name; the dimension is compared
    as soon as the model is loaded, before a vector is written."""
    client = open_client(kb_settings)
    collection = client.create_collection(
        kb_settings.collection,
        metadata={"embedder": embedder.name, "dimension": 7, "hnsw:space": "cosine"},
    )
    model = LazyEmbedder(kb_settings.embedding_model)
    with pytest.raises(EmbedderMismatchError, match="dimension 7"):
        index_paths(None, kb_settings, model)
    assert collection.count() == 0


@pytest.fixture
def run_cli(indexed: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    from bot.cli import app

    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(indexed.data_dir))
    monkeypatch.setenv("SUPPORTBOT_KB_PATH", str(indexed.kb_path))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, ["ingest", *args])
    get_settings.cache_clear()


@pytest.mark.usefixtures("no_model")
def test_the_cli_rerun_on_an_unchanged_kb_neither_loads_nor_announces_the_model(
    run_cli: Callable[..., Any],
) -> None:
    result = run_cli()
    assert result.exit_code == 0, result.output
    assert "Loading embedder" not in result.output
    assert "Ingest summary" in result.output
