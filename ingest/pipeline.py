"""Incremental ingestion: articles -> chunks -> vectors -> Chroma, kept in step with a ledger.

The order of operations is what makes this safe to interrupt and cheap to repeat:

1. Load files *outside* the lock (reading is harmless), then take the data directory's writer
   lock (``ingest.locking``), so two ingests never interleave.
2. **Reconcile**: articles the ledger marks ``pending`` (a previous run died mid-write) and any
   chunk in Chroma that the ledger does not account for are purged; the affected articles are
   indexed again below. After this step Chroma holds exactly what the ledger says.
3. **Plan** by fingerprint (article content + chunker version + chunking settings + embedder
   name): unchanged articles cost nothing, not even loading the model (it loads on the first
   article that must be chunked or embedded); changed ones are re-chunked; ledger rows whose
   file is gone from the folder being ingested are deleted. Deletion is scoped to that folder,
   so ingesting another folder never removes the first one's articles.
4. **Write** in groups of articles: embed all of a group's chunks in one ``encode`` call (batching
   is what makes the model fast), and their units (sentences, list items, the title/heading
   line: what retrieval compares a question with, ``ingest.unitvectors``), mark the group
   pending, upsert its chunks under their stable ids and its units beside them, drop chunk ids
   (and their units) an article no longer has, record the ledger rows. A store written before
   unit vectors existed gets the units of its unchanged chunks in the same run.
5. If anything changed, bump ``{data_dir}/kb_generation`` (the ``kb_generation`` row of a shared
   database) so the retrieval side (its BM25 index mirrors Chroma) knows to reload.

Every article is screened first (``ingest.screening``): invisible characters are removed, and an
article that asks for credentials or talks to an AI assistant is *held*: not indexed, listed in
the report's ``held`` and in the data directory's held list, its previously indexed version kept
(as for a file that failed) unless screening holds that version too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.chunking import CHUNKER_VERSION, Chunk, chunk_article, chunk_id
from ingest.embedder import SHORT_BATCH, LazyEmbedder
from ingest.ledger import Ledger, LedgerRow, bump_shared_generation, read_shared_generation
from ingest.loaders import Article, load_folder
from ingest.locking import DEFAULT_LOCK_TIMEOUT_S, ingest_lock
from ingest.screening import HeldArticle, record_held, screen_article, screen_text
from ingest.store import open_client, open_collection
from ingest.unitvectors import (
    ChunkUnits,
    UnitSplitter,
    create_units_collection,
    default_splitter,
    definition_print,
    delete_units,
    find_units_collection,
    is_complete,
    mark_complete,
    split_chunk,
    stored_vectors,
    write_units,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from bot.core.settings import Settings
    from ingest.embedder import Embedder

ProgressCallback = Callable[[str, int, int], None]
WriteGate = Callable[[], AbstractContextManager[object]]
"""Entered around every change to the store: a service holds its questions off inside it and
moves retrieval to the new state when it exits (``Retriever.publishing``)."""
"""``progress(stage, done, total)``; stages are ``"load"`` (files) and ``"embed"`` (chunks)."""

EMBED_GROUP_CHUNKS = 256
"""Chunks embedded per ``encode`` call and written per ledger transaction. Large enough for the
model to batch efficiently, small enough that a progress bar moves and a crash loses little."""

GENERATION_FILE = "kb_generation"

FILL_PAGE = 2_000
"""Chunks read per ``get`` when the units of a store's unchanged chunks are filled in."""


@dataclass(frozen=True)
class FileProblem:
    """A file that was not indexed, and why."""

    path: str
    reason: str


@dataclass
class IngestReport:
    """What one ingest did. Lists hold article ids (``failed``/``skipped``: file paths;
    ``held``: the articles screening kept out of the index, with the reason)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)
    held: list[HeldArticle] = field(default_factory=list)
    chunks_written: int = 0
    chunks_embedded: int = 0
    units_embedded: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    generation: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            self.added
            or self.updated
            or self.deleted
            or self.recovered
            or self.chunks_written
            or self.chunks_deleted
        )

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "recovered": self.recovered,
            "failed": [{"path": p.path, "reason": p.reason} for p in self.failed],
            "skipped": [{"path": p.path, "reason": p.reason} for p in self.skipped],
            "held": [
                {"id": h.id, "path": h.path, "title": h.title, "reason": h.reason}
                for h in self.held
            ],
            "chunks_written": self.chunks_written,
            "chunks_embedded": self.chunks_embedded,
            "units_embedded": self.units_embedded,
            "chunks_deleted": self.chunks_deleted,
            "chunks_total": self.chunks_total,
            "seconds": round(self.seconds, 3),
            "generation": self.generation,
        }


# --- the generation counter -----------------------------------------------------------------


def read_generation(settings: Settings) -> int:
    """The knowledge base's change counter; 0 before the first ingest."""
    if settings.shared_database:  # several processes: the counter is in the shared database
        return read_shared_generation(settings.ledger_url)
    try:
        return int((settings.data_dir / GENERATION_FILE).read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _bump_generation(settings: Settings) -> int:
    """Increment the counter atomically (write a temp file, then rename over the old one)."""
    if settings.shared_database:
        return bump_shared_generation(settings.ledger_url)
    generation = read_generation(settings) + 1
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=settings.data_dir, prefix=f".{GENERATION_FILE}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{generation}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, settings.data_dir / GENERATION_FILE)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return generation


# --- public API -----------------------------------------------------------------------------


def index_paths(
    paths: Sequence[Path] | None,
    settings: Settings,
    embedder: Embedder | LazyEmbedder | None = None,
    progress: ProgressCallback | None = None,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    write_gate: WriteGate | None = None,
    units: UnitSplitter | None = None,
) -> IngestReport:
    """Index folders or files (default: ``settings.kb_path``) incrementally.

    Articles whose files vanished from a given folder are deleted; bad files are reported in
    ``failed`` and their previously indexed version is kept. Without an ``embedder`` the
    configured one is loaded only if something must be chunked or embedded. ``units`` splits a
    chunk into the units whose vectors are stored beside it (default: retrieval's
    ``chunk_units``).
    """
    started = time.perf_counter()
    report = IngestReport()
    kb_root = settings.kb_path.resolve()
    articles: list[Article] = []
    owners: dict[str, str] = {}
    scopes: list[Path] = []
    for given in paths or [settings.kb_path]:
        path = given.resolve()
        if path.exists():  # a missing folder is an error, not "every article in it was deleted"
            scopes.append(path)
        id_root = kb_root if path == kb_root or kb_root in path.parents else None
        loaded = load_folder(path, id_root=id_root)
        report.failed.extend(FileProblem(e.path, e.reason) for e in loaded.failed)
        report.skipped.extend(FileProblem(e.path, e.reason) for e in loaded.skipped)
        for article in loaded.articles:
            source = article.source_path or ""
            if article.id in owners:
                if owners[article.id] != source:
                    report.failed.append(
                        FileProblem(
                            source,
                            f"duplicate article id {article.id!r} (also used by "
                            f"{owners[article.id]})",
                        )
                    )
                continue
            owners[article.id] = source
            articles.append(article)
    if progress:
        progress("load", len(articles), len(articles))
    articles, held = _screen(articles, report)
    protected = {str(Path(problem.path).resolve()) for problem in report.failed}

    def in_scope(row: LedgerRow) -> bool:
        if row.source_path is None or row.source_path in protected:
            return False
        source = Path(row.source_path)
        return any(source == scope or scope in source.parents for scope in scopes)

    _sync(
        articles,
        settings,
        embedder,
        progress,
        report,
        in_scope,
        lock_timeout_s,
        write_gate,
        held,
        units,
    )
    report.seconds = time.perf_counter() - started
    return report


def index_articles(
    articles: Sequence[Article],
    settings: Settings,
    embedder: Embedder | LazyEmbedder | None = None,
    progress: ProgressCallback | None = None,
    *,
    delete_missing: bool = False,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    write_gate: WriteGate | None = None,
    units: UnitSplitter | None = None,
) -> IngestReport:
    """Index articles given as objects (the admin API's publish); unchanged ones are skipped.

    With ``delete_missing``, every indexed article not in ``articles`` is deleted: the list is
    then the whole knowledge base.
    """
    started = time.perf_counter()
    report = IngestReport()
    unique: dict[str, Article] = {}
    for article in articles:
        unique[article.id] = article
    clean, held = _screen(list(unique.values()), report)
    _sync(
        clean,
        settings,
        embedder,
        progress,
        report,
        (lambda _row: True) if delete_missing else (lambda _row: False),
        lock_timeout_s,
        write_gate,
        held,
        units,
    )
    report.seconds = time.perf_counter() - started
    return report


def _screen(articles: list[Article], report: IngestReport) -> tuple[list[Article], list[Article]]:
    """``(clean, held)``: the articles with invisible characters removed, and the ones screening
    holds (also added to ``report.held`` with the reason)."""
    clean: list[Article] = []
    held: list[Article] = []
    for article in articles:
        cleaned, verdict = screen_article(article)
        if verdict.held:
            held.append(cleaned)
            report.held.append(
                HeldArticle(cleaned.id, cleaned.source_path, cleaned.title, verdict.reason)
            )
        else:
            clean.append(cleaned)
    return clean, held


def _held_version_indexed(
    store: _Store, row: LedgerRow, article: Article, model: LazyEmbedder, settings: Settings
) -> bool:
    """Does the index hold a version of a held article that must go too: this very text, or an
    earlier one that screening holds as well (indexed before screening existed)? An earlier
    clean version stays, as for a file that failed."""
    if row.fingerprint == fingerprint(article, model.name, settings):
        return True
    ids = [chunk_id(row.article_id, index) for index in range(row.chunk_count)]
    if not ids:
        return False
    documents = store.collection.get(ids=ids, include=["documents"])["documents"] or []
    return screen_text(*(document or "" for document in documents)).held


def delete_article(
    article_id: str,
    settings: Settings,
    embedder: Embedder | LazyEmbedder | None = None,
    *,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    write_gate: WriteGate | None = None,
) -> bool:
    """Remove one article's chunks and ledger row; False when it was not indexed."""
    with ingest_lock(settings, lock_timeout_s), (write_gate or nullcontext)():
        store = _Store.open(settings, _lazy(embedder, settings))
        ledger = Ledger(settings.ledger_url)
        try:
            _reconcile(store, ledger, IngestReport())
            row = ledger.rows().get(article_id)
            if row is None:
                return False
            _delete(store, ledger, [row])
            _bump_generation(settings)
            return True
        finally:
            ledger.close()


def fingerprint(article: Article, embedder_name: str, settings: Settings) -> str:
    """What decides whether an article's stored chunks are still right.

    The chunking settings enter as configured, not as clamped to the model's limit: the model
    is fixed by its name, so the same name and settings always give the same chunks, and the
    decision needs no loaded model.
    """
    parts = [
        article.content_hash,
        CHUNKER_VERSION,
        embedder_name,
        str(settings.chunk_max_tokens),
        str(settings.chunk_overlap_tokens),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def effective_max_tokens(settings: Settings, embedder: Embedder | LazyEmbedder) -> int:
    """The chunk bound: the setting, but never past what the model embeds ([CLS]+[SEP] aside)."""
    return min(settings.chunk_max_tokens, embedder.max_tokens - 2)


def chunk_bounds(settings: Settings, embedder: Embedder | LazyEmbedder) -> tuple[int, int]:
    """``(max_tokens, overlap)`` for the chunker; asks the model, so it loads it."""
    max_tokens = effective_max_tokens(settings, embedder)
    return max_tokens, min(settings.chunk_overlap_tokens, max_tokens // 4)


# --- the sync --------------------------------------------------------------------------------


def _lazy(embedder: Embedder | LazyEmbedder | None, settings: Settings) -> LazyEmbedder:
    if isinstance(embedder, LazyEmbedder):
        return embedder
    if embedder is not None:
        return LazyEmbedder.of(embedder)
    return LazyEmbedder(settings.embedding_model, settings.embedding_batch_size)


def _sync(
    articles: list[Article],
    settings: Settings,
    embedder: Embedder | LazyEmbedder | None,
    progress: ProgressCallback | None,
    report: IngestReport,
    deletable: Callable[[LedgerRow], bool],
    lock_timeout_s: float,
    write_gate: WriteGate | None = None,
    held: Sequence[Article] = (),
    units: UnitSplitter | None = None,
) -> None:
    """Plan, embed, then write. Only the last step changes the store, and it runs inside
    ``write_gate`` (the service holds its questions off there), so questions wait for the
    writes of an ingest, never for its embedding. ``held`` articles are not indexed; one whose
    held text is what the index holds (indexed before screening existed) is removed from it."""
    gate = write_gate or nullcontext
    model = _lazy(embedder, settings)
    splitter = units or default_splitter()
    bounds: tuple[int, int] | None = None  # asked of the model when the first article is chunked
    with ingest_lock(settings, lock_timeout_s):
        store = _Store.open(settings, model)
        ledger = Ledger(settings.ledger_url)
        try:
            repair = _plan_reconcile(store, ledger)
            if repair.needed:
                with gate():
                    _apply_reconcile(store, ledger, repair, report)
            rows = ledger.rows()
            present = {article.id for article in articles} | {article.id for article in held}
            gone = [r for r in rows.values() if r.article_id not in present and deletable(r)]
            for article in held:
                row = rows.get(article.id)
                if row is not None and _held_version_indexed(store, row, article, model, settings):
                    gone.append(row)

            plan: list[tuple[Article, list[Chunk], str, LedgerRow | None]] = []
            moved: list[LedgerRow] = []
            for article in articles:
                new_print = fingerprint(article, model.name, settings)
                row = rows.get(article.id)
                if row is not None and row.fingerprint == new_print:
                    report.unchanged.append(article.id)
                    if row.source_path != article.source_path:  # same text, file moved
                        moved.append(
                            LedgerRow(
                                article.id, article.source_path, new_print, row.chunk_count, False
                            )
                        )
                    continue
                bounds = bounds or chunk_bounds(settings, model)
                chunks = chunk_article(article, model.count_tokens, *bounds)
                if not chunks:
                    report.failed.append(
                        FileProblem(article.source_path or article.id, "no text to index")
                    )
                    continue
                plan.append((article, chunks, new_print, row))
            backfill = _missing_units(store, model, splitter, plan, gone, report)
            embedded = _embed_plan(store, model, splitter, plan, report, progress)
            if gone or moved or embedded or backfill is not None:
                with gate():
                    if backfill is not None:  # a new unit collection, then fill it
                        store.units = create_units_collection(store.client, store.name, model.name)
                        write_units(store.units, backfill, store.max_batch)
                    _delete(store, ledger, gone, report)
                    ledger.record(moved)
                    _store_plan(store, ledger, embedded, report)
                    if backfill is not None:
                        assert store.units is not None
                        mark_complete(store.units, model.name, definition_print(splitter))
                    if report.changed:
                        report.generation = _bump_generation(settings)
            if not report.changed:
                report.generation = read_generation(settings)
            report.chunks_total = store.collection.count()
            cleared = {*report.added, *report.updated, *report.unchanged, *report.deleted}
            record_held(settings.data_dir, report.held, cleared - {a.id for a in held})
        finally:
            ledger.close()


@dataclass
class _Store:
    """The collection plus the largest write Chroma accepts in one call.

    Opened with a model that is not loaded yet, an existing collection is taken on its recorded
    embedder name alone; the full check (:func:`ingest.store.open_collection`, which compares the
    dimension too) runs in :meth:`confirm` before any vector is written.
    """

    client: ClientAPI
    name: str
    collection: Collection
    max_batch: int
    confirmed: bool
    units: Collection | None = None
    """The unit vectors beside the chunks (``ingest.unitvectors``); None before the first."""

    @classmethod
    def open(cls, settings: Settings, embedder: LazyEmbedder) -> _Store:
        client = open_client(settings)
        max_batch = max(1, min(5000, int(client.get_max_batch_size())))
        units = find_units_collection(client, settings.collection)
        if not embedder.loaded:
            existing = _existing_collection(client, settings.collection)
            if existing is not None and (existing.metadata or {}).get("embedder") == embedder.name:
                return cls(client, settings.collection, existing, max_batch, False, units)
        collection = open_collection(client, settings.collection, embedder.load())
        return cls(client, settings.collection, collection, max_batch, True, units)

    def confirm(self, embedder: LazyEmbedder) -> None:
        """Refuse to write vectors of another model than the collection's (same name, other
        dimension: a local model folder replaced in place)."""
        if not self.confirmed:
            self.collection = open_collection(self.client, self.name, embedder.load())
            self.confirmed = True

    def delete(self, ids: Sequence[str]) -> None:
        """Remove chunks and their units (units first: a chunk left without units costs a
        reader some embedding, units left without a chunk would never be removed)."""
        delete_units(self.units, ids)
        for start in range(0, len(ids), self.max_batch):
            self.collection.delete(ids=list(ids[start : start + self.max_batch]))


def _existing_collection(client: ClientAPI, name: str) -> Collection | None:
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(name)
    except NotFoundError:
        return None


@dataclass(frozen=True)
class _Repair:
    """What :func:`_apply_reconcile` must undo: chunks no finished ledger row accounts for."""

    doomed: list[str]
    broken: set[str]

    @property
    def needed(self) -> bool:
        return bool(self.doomed or self.broken)


def _plan_reconcile(store: _Store, ledger: Ledger) -> _Repair:
    """Compare Chroma with the ledger (reads only).

    Pending rows (a write that never finished) and rows with missing chunks are to be purged and
    forgotten, so the plan re-indexes them; chunks no row accounts for are to be deleted.
    """
    rows = ledger.rows()
    stored = _all_ids(store.collection)
    expected: dict[str, str] = {}
    for row in rows.values():
        if not row.pending:
            for index in range(row.chunk_count):
                expected[chunk_id(row.article_id, index)] = row.article_id
    broken = {row.article_id for row in rows.values() if row.pending}
    stored_set = set(stored)
    broken.update(article_id for cid, article_id in expected.items() if cid not in stored_set)
    doomed = [cid for cid in stored if cid not in expected or expected[cid] in broken]
    return _Repair(doomed, broken)


def _apply_reconcile(store: _Store, ledger: Ledger, repair: _Repair, report: IngestReport) -> None:
    """Make Chroma hold exactly what the ledger records, forgetting articles it cannot vouch
    for."""
    store.delete(repair.doomed)
    if repair.broken:
        ledger.forget(sorted(repair.broken))
    report.recovered.extend(sorted(repair.broken))
    report.chunks_deleted += len(repair.doomed)


def _reconcile(store: _Store, ledger: Ledger, report: IngestReport) -> None:
    _apply_reconcile(store, ledger, _plan_reconcile(store, ledger), report)


def _delete(
    store: _Store,
    ledger: Ledger,
    rows: Sequence[LedgerRow],
    report: IngestReport | None = None,
) -> None:
    if not rows:
        return
    ids = [row.article_id for row in rows]
    ledger.mark_pending(ids, {})
    doomed = [chunk_id(row.article_id, i) for row in rows for i in range(row.chunk_count)]
    store.delete(doomed)
    ledger.forget(ids)
    if report is not None:
        report.deleted.extend(sorted(ids))
        report.chunks_deleted += len(doomed)


_Group = list[tuple[Article, list[Chunk], str, LedgerRow | None]]


@dataclass
class _Embedded:
    """One group of the plan, embedded: its chunks, their vectors, their units' vectors."""

    group: _Group
    chunks: list[Chunk]
    vectors: Any
    units: list[ChunkUnits]


def _embed_plan(
    store: _Store,
    embedder: LazyEmbedder,
    splitter: UnitSplitter,
    plan: _Group,
    report: IngestReport,
    progress: ProgressCallback | None,
) -> list[_Embedded]:
    """Every group of the plan with its chunks and their vectors (float32, so a large ingest
    holds about 1.5 KB a chunk, and about as much per sentence, until it is written). Reads the
    store, never writes it."""
    import numpy as np

    total = sum(len(chunks) for _, chunks, _, _ in plan)
    done = 0
    if plan:
        store.confirm(embedder)
    if progress:
        progress("embed", 0, total)
    embedded: list[_Embedded] = []
    for group in _groups(plan, EMBED_GROUP_CHUNKS):
        chunks = [chunk for _, article_chunks, _, _ in group for chunk in article_chunks]

        def reached(count: int, done: int = done, size: int = len(chunks)) -> None:
            if progress:
                progress("embed", done + min(count, size), total)

        vectors = _embed(store, embedder, group, chunks, report, reached)
        units = [split_chunk(splitter, c.id, c.text, c.metadata) for c in chunks]
        _embed_units(embedder, units, report, reusable=_previous_units(store, group))
        embedded.append(_Embedded(group, chunks, np.asarray(vectors, dtype=np.float32), units))
        done += len(chunks)
        if progress:
            progress("embed", done, total)
    return embedded


def _store_plan(
    store: _Store,
    ledger: Ledger,
    embedded: list[_Embedded],
    report: IngestReport,
) -> None:
    """Write embedded groups: each is marked pending in the ledger first, so a crash part-way
    is repaired by the next run (:func:`_plan_reconcile`)."""
    for item in embedded:
        group, chunks, vectors = item.group, item.chunks, item.vectors
        ledger.mark_pending(
            [article.id for article, _, _, _ in group],
            {article.id: article.source_path for article, _, _, _ in group},
        )
        batch = store.max_batch
        for start in range(0, len(chunks), batch):
            part = chunks[start : start + batch]
            store.collection.upsert(
                ids=[chunk.id for chunk in part],
                documents=[chunk.text for chunk in part],
                metadatas=[chunk.metadata for chunk in part],
                embeddings=vectors[start : start + batch],
            )
        stale = [
            chunk_id(article.id, index)
            for article, article_chunks, _, row in group
            if row is not None
            for index in range(len(article_chunks), row.chunk_count)
        ]
        store.delete(stale)
        assert store.units is not None  # made by _sync before the first write
        write_units(store.units, item.units, store.max_batch)
        ledger.record(
            LedgerRow(article.id, article.source_path, new_print, len(article_chunks), False)
            for article, article_chunks, new_print, _ in group
        )
        for article, _, _, row in group:
            (report.updated if row is not None else report.added).append(article.id)
        report.chunks_written += len(chunks)
        report.chunks_deleted += len(stale)


def _missing_units(
    store: _Store,
    embedder: LazyEmbedder,
    splitter: UnitSplitter,
    plan: _Group,
    gone: Sequence[LedgerRow],
    report: IngestReport,
) -> list[ChunkUnits] | None:
    """None when the unit collection covers every stored chunk; else the units of the chunks
    this run keeps as they are, embedded (a store indexed before unit vectors existed, or in
    an older unit format, or a fill that was interrupted). Reads the store, never writes it."""
    if is_complete(store.units, embedder.name, definition_print(splitter)):
        return None
    rewritten = {article.id for article, _, _, _ in plan} | {row.article_id for row in gone}
    kept: list[ChunkUnits] = []
    offset = 0
    while True:
        got = store.collection.get(
            include=["documents", "metadatas"], limit=FILL_PAGE, offset=offset
        )
        for cid, text, meta in zip(
            got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
        ):
            metadata = dict(meta or {})
            if str(metadata.get("source") or metadata.get("article_id") or "") not in rewritten:
                kept.append(split_chunk(splitter, cid, text or "", metadata))
        offset += len(got["ids"])
        if len(got["ids"]) < FILL_PAGE:
            break
    if any(c.texts for c in kept):
        store.confirm(embedder)
    _embed_units(embedder, kept, report, reusable={})
    return kept


def _previous_units(store: _Store, group: _Group) -> dict[str, Any]:
    """Unit text -> stored vector over the chunks the group's articles have now: an edit
    embeds the sentences it changed, not the whole article again."""
    previous = [
        chunk_id(article.id, index)
        for article, _, _, row in group
        if row is not None
        for index in range(row.chunk_count)
    ]
    if not previous or store.units is None:
        return {}
    return stored_vectors(store.units, previous)


def _embed_units(
    embedder: LazyEmbedder,
    chunks: Sequence[ChunkUnits],
    report: IngestReport,
    reusable: dict[str, Any],
) -> None:
    """Fill each chunk's unit ``vectors``, embedding only texts not in ``reusable``."""
    import numpy as np

    known = dict(reusable)
    missing = list(dict.fromkeys(t for c in chunks for t in c.texts if t not in known))
    missing.sort(key=len, reverse=True)  # one length per model batch: little padding
    step = 4 * max(embedder.batch_size, SHORT_BATCH)
    for start in range(0, len(missing), step):
        part = missing[start : start + step]
        known.update(zip(part, embedder.encode_short(part), strict=True))
        report.units_embedded += len(part)
    for chunk in chunks:
        if chunk.texts:
            chunk.vectors = np.asarray([known[t] for t in chunk.texts], dtype=np.float32)


def _embed(
    store: _Store,
    embedder: LazyEmbedder,
    group: list[tuple[Article, list[Chunk], str, LedgerRow | None]],
    chunks: list[Chunk],
    report: IngestReport,
    embedded: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Vectors for ``chunks``, embedding only texts the store does not already hold.

    An edited article usually keeps most of its chunks word for word (an added paragraph,
    a fixed typo); the model is deterministic, so their stored vectors are reused, matched by
    text rather than position so that shifted chunks are reused too. This is what makes a
    one-article edit cost one or two chunk embeddings instead of the whole article.
    """
    previous = [
        chunk_id(article.id, index)
        for article, _, _, row in group
        if row is not None
        for index in range(row.chunk_count)
    ]
    known: dict[str, list[float]] = {}
    for start in range(0, len(previous), store.max_batch):
        got = store.collection.get(
            ids=previous[start : start + store.max_batch],
            include=["documents", "embeddings"],
        )
        documents = got["documents"] or []
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        for document, vector in zip(documents, embeddings, strict=True):
            if document is not None:
                known[document] = [float(x) for x in vector.tolist()]
    missing = list(dict.fromkeys(chunk.text for chunk in chunks if chunk.text not in known))
    # Longest first, one model batch per call: every batch holds texts of about one length
    # (little padding, as in one big encode call) and the progress bar moves per batch.
    missing.sort(key=len, reverse=True)
    step = embedder.batch_size
    for start in range(0, len(missing), step):
        part = missing[start : start + step]
        known.update(zip(part, embedder.encode(part), strict=True))
        report.chunks_embedded += len(part)
        if embedded:
            embedded(start + len(part))
    return [known[chunk.text] for chunk in chunks]


def _groups(
    plan: list[tuple[Article, list[Chunk], str, LedgerRow | None]], size: int
) -> Iterable[list[tuple[Article, list[Chunk], str, LedgerRow | None]]]:
    """Whole articles per group, about ``size`` chunks each."""
    group: list[tuple[Article, list[Chunk], str, LedgerRow | None]] = []
    count = 0
    for item in plan:
        group.append(item)
        count += len(item[1])
        if count >= size:
            yield group
            group, count = [], 0
    if group:
        yield group


def _all_ids(collection: Collection) -> list[str]:
    ids: list[str] = []
    page = 10_000
    while True:
        got = collection.get(include=[], limit=page, offset=len(ids))
        ids.extend(got["ids"])
        if len(got["ids"]) < page:
            return ids
