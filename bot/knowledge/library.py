"""Articles as files: the logic of the admin API's knowledge-base editor.

The articles folder (``settings.kb_path``) stays the source of truth. The API writes the same
Markdown-with-front-matter file a person would (``<kb_path>/<id>.md``), so a text editor plus
``supportbot ingest`` keep working beside it, and an article published here is the same article
an ingest of the folder finds (same id, same fingerprint: nothing is embedded twice).

What the API adds to editing files:

* **Publishing is one step.** The file is written and exactly that article is re-indexed, both
  under the process's knowledge writer (``bot.knowledge.publishing``); when indexing fails, the
  previous file is put back and the error reported: nothing is left half-done. When the call
  returns, the next question is answered from the new text.
* **Every change is audited** in ``article_versions``: who (the admin's email), when, what, the
  previous and the new content hash, and the content itself, so any version can be shown and
  restored, a deleted article's too. A file changed on disk since the last API change is kept as
  a ``file`` version first, so no previous version is ever lost.
* **Ids are checked before they become paths**: words of letters, digits, ``.``, ``_`` and ``-``
  separated by ``/``; no ``..``, no leading ``/``, no backslashes, and the resolved file must lie
  inside the articles folder.
* **Articles are screened before anything is written** (``ingest.screening``): one that asks
  for credentials or talks to an AI assistant is refused with a 422 that says why, and the
  articles an ingest held are listed (:meth:`ArticleLibrary.held`) for the admin page.

Errors a client can fix raise :class:`LibraryError` with an HTTP status and a sentence.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

import yaml
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.core.models import ArticleVersion
from ingest.loaders import (
    ARTICLE_SUFFIXES,
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    Article,
    ArticleError,
    SkipFile,
    discover_files,
    find_includes_dir,
    load_article,
    parse_html,
    parse_markdown,
    parse_text,
    read_text,
    split_front_matter,
)
from ingest.screening import load_held, screen_article, strip_invisible

if TYPE_CHECKING:
    from bot.core.settings import Settings
    from bot.knowledge.publishing import KnowledgeBatch, KnowledgeWriter
    from ingest.ledger import Ledger, LedgerRow

log = logging.getLogger(__name__)

MAX_ID_CHARS = 200
MAX_TITLE_CHARS = 300
MAX_URL_CHARS = 2000
MAX_TAGS = 30
MAX_TAG_CHARS = 64
MAX_UPLOAD_FILES = 50
RESERVED_SEGMENTS = frozenset({"versions"})
"""``/api/admin/articles/{id}/versions`` must mean the versions of ``{id}``."""
RESERVED_ID = "held"
"""``/api/admin/articles/held`` is the list of articles screening held."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")
_URL = re.compile(r"(?:https?://[^\s/]+|/)\S*", re.IGNORECASE)


class LibraryError(Exception):
    """A request the library refuses: ``status`` is the HTTP status, ``detail`` says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# --- ids and text -------------------------------------------------------------------------------


def id_problem(article_id: str) -> str | None:
    """Why ``article_id`` cannot name an article file, or None when it can."""
    if not article_id:
        return "article id is empty"
    if len(article_id) > MAX_ID_CHARS:
        return f"article id is longer than {MAX_ID_CHARS} characters"
    if "\\" in article_id:
        return "article ids use '/' between parts; backslashes are not allowed"
    if article_id.startswith("/"):
        return "article ids are relative to the articles folder: no leading '/'"
    if any(part in (".", "..") for part in article_id.split("/")):
        return "'.' and '..' are not allowed in article ids"
    if not _ID.fullmatch(article_id):
        return (
            "article ids are words of letters, digits, '.', '_' and '-' separated by single "
            "'/', each starting with a letter or digit"
        )
    parts = article_id.lower().split("/")
    if parts == [RESERVED_ID]:
        return f"'{RESERVED_ID}' is reserved: /api/admin/articles/{RESERVED_ID} lists held articles"
    if any(part in RESERVED_SEGMENTS for part in parts):
        return f"'{'/'.join(sorted(RESERVED_SEGMENTS))}' is reserved and cannot be part of an id"
    if any(parts[-1].endswith(suffix) for suffix in ARTICLE_SUFFIXES):
        return "leave the file extension out of the article id"
    return None


def check_id(article_id: str) -> str:
    """``article_id`` if it is a valid id; ``LibraryError`` 422 otherwise."""
    problem = id_problem(article_id)
    if problem:
        raise LibraryError(422, f"{problem}: {article_id!r}")
    return article_id


def slugify(text: str) -> str:
    """``"Refunds & returns (EU)"`` -> ``"refunds-returns-eu"``: the default id of a title."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:80].strip("-")


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _normalise_body(body: str) -> str:
    return body.replace("\r\n", "\n").replace("\r", "\n").strip("\n").rstrip()


# --- request and response shapes ------------------------------------------------------------------


class ArticleIn(BaseModel):
    """An article as an admin writes it (``POST`` creates, ``PUT`` replaces)."""

    id: str | None = Field(
        None,
        description="e.g. 'billing/refunds'; defaults to a slug of the title on create, and "
        "must equal the id in the URL on PUT.",
    )
    title: str = Field(description="One line.")
    body: str = Field(description="Markdown.")
    url: str | None = Field(None, description="Public link cited with answers (http(s) or /path).")
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    visibility: Literal["public", "internal"] = Field(
        "public", description="Only public articles are answered from."
    )
    language: str | None = Field(None, description="e.g. 'en' or 'pt-BR'.")
    version: int | None = Field(
        None,
        description="PUT: the version you edited. When the article changed since, the PUT is "
        "a 409 instead of overwriting someone else's edit.",
    )

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        problem = id_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("title")
    @classmethod
    def _check_title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("title must not be empty")
        if "\n" in value or "\r" in value:
            raise ValueError("title must be one line")
        if len(value) > MAX_TITLE_CHARS:
            raise ValueError(f"title is longer than {MAX_TITLE_CHARS} characters")
        return value

    @field_validator("body")
    @classmethod
    def _check_body(cls, value: str) -> str:
        value = _normalise_body(value)
        if not value.strip():
            raise ValueError("body must not be empty")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if len(value) > MAX_URL_CHARS or not _URL.fullmatch(value):
            raise ValueError("url must be an http(s) address or a path starting with '/'")
        return value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        tags: list[str] = []
        for raw in value:
            tag = raw.strip()
            if not tag:
                continue
            if "," in tag or "\n" in tag or len(tag) > MAX_TAG_CHARS:
                raise ValueError(
                    f"tags are one line, without commas, {MAX_TAG_CHARS} chars at most"
                )
            if tag not in tags:
                tags.append(tag)
        return tags

    @field_validator("language")
    @classmethod
    def _check_language(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None
        if not _LANGUAGE.fullmatch(value):
            raise ValueError("language must be a language tag such as 'en' or 'pt-BR'")
        return value


class ArticleSummary(BaseModel):
    """An article in the list."""

    id: str
    title: str
    url: str | None
    tags: list[str]
    visibility: str
    language: str | None
    path: str = Field(description="The file, relative to the articles folder.")
    updated_at: datetime
    updated_by: str | None = Field(description="The admin's email; null for a change on disk.")
    indexed: bool = Field(description="The index holds this article (chunks are searchable).")
    chunks: int = Field(description="Chunks the index holds for it.")


class ArticleOut(ArticleSummary):
    """One article with its Markdown body."""

    body: str
    version: int = Field(description="Latest version number (0: never changed through the API).")


class ArticlePage(BaseModel):
    items: list[ArticleSummary]
    total: int
    page: int
    per_page: int


class UploadResult(BaseModel):
    filename: str
    id: str | None
    status: Literal["created", "updated", "failed"]
    error: str | None = None


class UploadReport(BaseModel):
    results: list[UploadResult]


class HeldOut(BaseModel):
    """An article screening kept out of the index: fix it (or remove it) and publish again."""

    id: str
    title: str
    path: str | None = Field(description="The file, relative to the articles folder if inside.")
    reason: str = Field(description="What screening found, with the words that matched.")
    held_at: str = Field(description="When an ingest first held this version (ISO 8601 UTC).")


class VersionSummary(BaseModel):
    version: int
    action: str = Field(description="create | update | upload | delete | restore | file")
    at: datetime
    by: str | None = Field(description="The admin's email; null for a 'file' version.")
    title: str | None


class VersionOut(VersionSummary):
    """One version with its content (``body`` null for a deletion)."""

    id: str
    path: str | None
    body: str | None
    url: str | None
    tags: list[str]
    visibility: str | None
    language: str | None
    content_hash: str | None
    previous_hash: str | None


# --- the library ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """An article file as it is on disk now."""

    path: Path
    raw: bytes  # exactly what to write back when a change is undone
    text: str
    article: Article
    mtime: float


@dataclass
class _Change:
    """One article file to write (``new_text``) or remove (``new_text`` None)."""

    article_id: str
    action: str
    new_text: str | None
    target: Path | None
    old: _Entry | None
    filename: str | None = None
    article: Article | None = None
    error: str | None = None
    applied: bool = False


class ArticleLibrary:
    """The articles folder, its index and its version history, for one service process."""

    def __init__(
        self, settings: Settings, writer: KnowledgeWriter, sessions: sessionmaker[Session]
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.sessions = sessions
        self.root = settings.kb_path.resolve()
        self._cache: dict[Path, tuple[tuple[int, int], _Entry | None]] = {}
        self._scan_lock = threading.Lock()
        self._ledger: Ledger | None = None

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()

    # --- reading ---------------------------------------------------------------------------
    def list_articles(
        self, q: str | None = None, tag: str | None = None, page: int = 1, per_page: int = 50
    ) -> ArticlePage:
        """Articles by id; ``q`` matches id, title, body and tags, ``tag`` one tag exactly
        (both case-insensitive)."""
        entries = sorted(self._scan().values(), key=lambda e: e.article.id)
        if q and q.strip():
            needle = q.strip().lower()
            entries = [e for e in entries if needle in _haystack(e.article)]
        if tag and tag.strip():
            wanted = tag.strip().lower()
            entries = [e for e in entries if wanted in {t.lower() for t in e.article.tags}]
        start = (page - 1) * per_page
        shown = entries[start : start + per_page]
        with self.sessions() as session:
            latest = _latest_versions(session, [e.article.id for e in shown])
        rows = self._ledger_rows()
        items = [self._summary(e, latest.get(e.article.id), rows) for e in shown]
        return ArticlePage(items=items, total=len(entries), page=page, per_page=per_page)

    def get(self, article_id: str) -> ArticleOut:
        check_id(article_id)
        entry = self._scan().get(article_id)
        if entry is None:
            raise LibraryError(404, f"no article with id {article_id!r}")
        return self._out(entry)

    def held(self) -> list[HeldOut]:
        """The articles ingests held for review (files that still exist), by id."""
        items = []
        for item in load_held(self.settings.data_dir):
            if item.path is not None and not Path(item.path).exists():
                continue
            path = self._relative(Path(item.path)) if item.path else None
            items.append(
                HeldOut(
                    id=item.id,
                    title=item.title,
                    path=path,
                    reason=item.reason,
                    held_at=item.held_at,
                )
            )
        return items

    def versions(self, article_id: str) -> list[VersionSummary]:
        """Every version, newest first."""
        check_id(article_id)
        with self.sessions() as session:
            rows = session.scalars(
                select(ArticleVersion)
                .where(ArticleVersion.article_id == article_id)
                .order_by(ArticleVersion.version.desc())
            ).all()
        if not rows and article_id not in self._scan():
            raise LibraryError(404, f"no article with id {article_id!r}")
        return [
            VersionSummary(
                version=r.version,
                action=r.action,
                at=_aware(r.created_at),
                by=r.actor,
                title=r.title,
            )
            for r in rows
        ]

    def version(self, article_id: str, number: int) -> VersionOut:
        check_id(article_id)
        with self.sessions() as session:
            row = _version(session, article_id, number)
        return _version_out(row)

    # --- writing ---------------------------------------------------------------------------
    def create(self, data: ArticleIn, actor: str) -> ArticleOut:
        """A new article; 409 when the id is taken."""
        article_id = data.id or slugify(data.title)
        if not article_id:
            raise LibraryError(
                422, "the title has no letters or digits to make an id from: give an id"
            )
        check_id(article_id)
        self._check_size(data.body)
        with self.writer.writing() as kb:
            entries = self._scan()
            if article_id in entries:
                existing = self._relative(entries[article_id].path)
                raise LibraryError(409, f"an article with id {article_id!r} exists ({existing})")
            target = self._free_target(self._target(article_id), None)
            text = self._screened(article_id, render_article(article_id, data))
            change = _Change(article_id, "create", text, target, None)
            self._commit(kb, [change], actor)
        _raise_if_failed(change)
        self.writer.warm([article_id])
        return self.get(article_id)

    def update(self, article_id: str, data: ArticleIn, actor: str) -> ArticleOut:
        """Replace an article's fields and body; its id stays."""
        check_id(article_id)
        if data.id is not None and data.id != article_id:
            raise LibraryError(
                422,
                f"the id cannot change ({article_id!r} -> {data.id!r}): create the article "
                "under the new id and delete this one",
            )
        self._check_size(data.body)
        with self.writer.writing() as kb:
            entry = self._scan().get(article_id)
            if entry is None:
                raise LibraryError(404, f"no article with id {article_id!r}")
            with self.sessions() as session:
                latest = _latest_versions(session, [article_id]).get(article_id)
            current = latest.version if latest else 0
            if data.version is not None and data.version != current:
                raise LibraryError(
                    409,
                    f"{article_id!r} changed since version {data.version} (it is at version "
                    f"{current} now): reload it and apply your edit again",
                )
            text = self._screened(article_id, render_article(article_id, data))
            target = self._free_target(self._edit_target(entry), entry)
            change = _Change(article_id, "update", text, target, entry)
            if entry.text != text or entry.path != target:
                self._commit(kb, [change], actor)
        _raise_if_failed(change)
        self.writer.warm([article_id])
        return self.get(article_id)

    def delete(self, article_id: str, actor: str) -> None:
        """Remove the file and its chunks; the versions stay, so it can be restored."""
        check_id(article_id)
        with self.writer.writing() as kb:
            entry = self._scan().get(article_id)
            if entry is None:
                raise LibraryError(404, f"no article with id {article_id!r}")
            change = _Change(article_id, "delete", None, None, entry)
            self._commit(kb, [change], actor)
        _raise_if_failed(change)

    def restore(self, article_id: str, number: int, actor: str) -> ArticleOut:
        """Make version ``number`` the current article again (a deleted one too)."""
        check_id(article_id)
        with self.writer.writing() as kb:
            with self.sessions() as session:
                row = _version(session, article_id, number)
            if row.content is None:
                raise LibraryError(
                    409, f"version {number} is the deletion; restore a version before it"
                )
            entry = self._scan().get(article_id)
            target = self._free_target(self._restore_target(row.path, article_id), entry)
            self._screened(article_id, row.content)
            change = _Change(article_id, "restore", row.content, target, entry)
            if entry is None or entry.text != row.content or entry.path != target:
                self._commit(kb, [change], actor)
        _raise_if_failed(change)
        self.writer.warm([article_id])
        return self.get(article_id)

    def upload(self, files: Sequence[tuple[str, bytes]], actor: str) -> UploadReport:
        """Publish several files at once; a bad file fails alone, with its reason."""
        if len(files) > MAX_UPLOAD_FILES:
            raise LibraryError(413, f"{len(files)} files; upload {MAX_UPLOAD_FILES} at most")
        results: list[UploadResult] = []
        prepared: list[tuple[int, str, str]] = []  # (result index, id, file text)
        for filename, data in files:
            try:
                article_id, text = self._prepare_upload(filename, data)
            except LibraryError as exc:
                failed = UploadResult(filename=filename, id=None, status="failed", error=exc.detail)
                results.append(failed)
                continue
            results.append(UploadResult(filename=filename, id=article_id, status="created"))
            prepared.append((len(results) - 1, article_id, text))
        if not prepared:
            return UploadReport(results=results)
        with self.writer.writing() as kb:
            entries = self._scan()
            changes: list[tuple[int, _Change]] = []
            taken: set[str] = set()
            for index, article_id, text in prepared:
                result = results[index]
                entry = entries.get(article_id)
                try:
                    if article_id in taken:
                        raise LibraryError(409, f"another file of this upload is {article_id!r}")
                    target = self._edit_target(entry) if entry else self._target(article_id)
                    target = self._free_target(target, entry)
                except LibraryError as exc:
                    result.status, result.error = "failed", exc.detail
                    continue
                taken.add(article_id)
                result.status = "created" if entry is None else "updated"
                if entry is None or entry.text != text or entry.path != target:
                    change = _Change(article_id, "upload", text, target, entry, result.filename)
                    changes.append((index, change))
            self._commit(kb, [change for _, change in changes], actor)
            for index, change in changes:
                if change.error:
                    results[index].status, results[index].error = "failed", change.error
        self.writer.warm(r.id for r in results if r.id and r.status != "failed")
        return UploadReport(results=results)

    # --- the one way a change happens ----------------------------------------------------------
    def _commit(self, kb: KnowledgeBatch, changes: Sequence[_Change], actor: str) -> None:
        """Write the files, index exactly those articles, record the versions: together.

        A change whose file does not load or whose article does not index is undone alone
        (``change.error`` says why; its previous chunks were never touched). An exception
        (the store or the database failing) undoes every change, re-indexes what was there
        before, and becomes a 500 ``LibraryError``: an error, never a half-published article.
        """
        if not changes:
            return
        includes = find_includes_dir(self.root)
        with self.sessions() as session:
            try:
                for change in changes:
                    _apply_file(change)
                for change in changes:
                    if change.new_text is None:
                        continue
                    assert change.target is not None
                    try:
                        article = load_article(change.target, self.root, includes)
                    except (ArticleError, SkipFile) as exc:
                        _fail(change, exc.reason)
                        continue
                    if article.id != change.article_id:
                        _fail(change, f"the file's id is {article.id!r}, not {change.article_id!r}")
                        continue
                    change.article = article
                indexed = [c for c in changes if c.article is not None]
                if indexed:
                    report = kb.index([c.article for c in indexed if c.article is not None])
                    problems = {problem.path: problem.reason for problem in report.failed}
                    problems.update({(h.path or h.id): h.reason for h in report.held})
                    for change in indexed:
                        assert change.article is not None
                        reason = problems.get(change.article.source_path or "") or problems.get(
                            change.article_id
                        )
                        if reason:
                            _fail(change, reason)
                for change in changes:
                    if change.new_text is None:
                        kb.delete(change.article_id)
                for change in changes:
                    if change.error is None:
                        self._record(session, change, actor)
                session.commit()
            except BaseException as exc:
                session.rollback()
                for change in changes:
                    _undo_file(change)
                self._reindex_previous(kb, changes)
                if isinstance(exc, Exception) and not isinstance(exc, LibraryError):
                    log.exception("publishing %s failed", [c.article_id for c in changes])
                    detail = f"publishing failed, and nothing was changed: {exc}"
                    raise LibraryError(500, detail) from exc
                raise

    def _reindex_previous(self, kb: KnowledgeBatch, changes: Sequence[_Change]) -> None:
        """After a failed write: index the restored files again (unchanged ones cost nothing;
        ones the failed write touched are repaired), and drop articles that did not exist."""
        try:
            previous = [c.old.article for c in changes if c.old is not None]
            if previous:
                kb.index(previous)
            for change in changes:
                if change.old is None:
                    kb.delete(change.article_id)
        except Exception:
            log.exception("re-indexing the previous articles after a failed publish failed")

    def _record(self, session: Session, change: _Change, actor: str) -> None:
        latest = _latest_versions(session, [change.article_id]).get(change.article_id)
        number = latest.version if latest else 0
        old = change.old
        previous_hash = content_hash(old.text) if old else None
        if old is not None and (latest is None or latest.content_hash != previous_hash):
            number += 1  # the file as it was: written by hand, or edited on disk since
            session.add(
                ArticleVersion(
                    article_id=change.article_id,
                    version=number,
                    action="file",
                    title=old.article.title,
                    path=self._relative(old.path),
                    content=old.text,
                    content_hash=previous_hash,
                    previous_hash=latest.content_hash if latest else None,
                    actor=None,
                    created_at=datetime.fromtimestamp(old.mtime, UTC),
                )
            )
        new_text = change.new_text
        title = change.article.title if change.article else (old.article.title if old else None)
        path = change.target if change.target is not None else (old.path if old else None)
        session.add(
            ArticleVersion(
                article_id=change.article_id,
                version=number + 1,
                action=change.action,
                title=title,
                path=self._relative(path) if path else None,
                content=new_text,
                content_hash=content_hash(new_text) if new_text is not None else None,
                previous_hash=previous_hash,
                actor=actor,
            )
        )
        session.flush()

    # --- helpers -------------------------------------------------------------------------------
    def _prepare_upload(self, filename: str, data: bytes) -> tuple[str, str]:
        """An uploaded file as ``(id, article file text)``; ``LibraryError`` says why not."""
        name = PurePosixPath(filename.replace("\\", "/")).name
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in ARTICLE_SUFFIXES:
            raise LibraryError(
                415, f"unsupported file type {suffix or '(none)'!r}: upload .md, .html or .txt"
            )
        limit = self.settings.kb_max_article_bytes
        if len(data) > limit:
            raise LibraryError(413, f"file is {len(data)} bytes; the limit is {limit}")
        try:
            text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError as exc:
            raise LibraryError(400, f"not valid UTF-8 (at byte {exc.start})") from None
        default_id = slugify(PurePosixPath(name).stem) or "-"
        try:
            if suffix in MARKDOWN_SUFFIXES:
                body = split_front_matter(text, name)[1]
                article = parse_markdown(text, default_id=default_id, path_for_errors=name)
            elif suffix in HTML_SUFFIXES:
                article = parse_html(text, default_id=default_id, path_for_errors=name)
                body = article.body
            else:
                article = parse_text(text, default_id=default_id, path_for_errors=name)
                body = article.body
        except (ArticleError, SkipFile) as exc:
            raise LibraryError(422, exc.reason) from None
        check_id(article.id)
        try:
            data_in = ArticleIn.model_validate(
                {
                    "id": article.id,
                    "title": article.title,
                    "body": body,
                    "url": article.url,
                    "tags": list(article.tags),
                    "visibility": article.visibility,
                    "language": article.language,
                }
            )
        except ValueError as exc:
            raise LibraryError(422, _first_error(exc)) from None
        self._check_size(data_in.body)
        return article.id, self._screened(article.id, render_article(article.id, data_in))

    def _screened(self, article_id: str, text: str) -> str:
        """``text`` (an article file) without invisible characters, if screening lets it be
        published; otherwise a 422 with what was found, before anything is written."""
        text = strip_invisible(text)
        try:
            article = parse_markdown(
                text,
                default_id=article_id,
                includes_dir=find_includes_dir(self.root),
                path_for_errors=f"{article_id}.md",
            )
        except (ArticleError, SkipFile) as exc:
            raise LibraryError(422, exc.reason) from None
        _, verdict = screen_article(article)
        if verdict.held:
            raise LibraryError(422, f"{article_id!r} was not published: {verdict.reason}")
        return text

    def _check_size(self, body: str) -> None:
        size = len(body.encode("utf-8"))
        limit = self.settings.kb_max_article_bytes
        if size > limit:
            raise LibraryError(413, f"body is {size} bytes; the limit is {limit}")

    def _target(self, article_id: str) -> Path:
        """``<kb_path>/<id>.md``, refused if it would resolve outside the articles folder."""
        path = (self.root / f"{article_id}.md").resolve()
        if self.root not in path.parents:
            raise LibraryError(422, f"{article_id!r} would be a file outside the articles folder")
        return path

    def _free_target(self, target: Path, entry: _Entry | None) -> Path:
        """``target``, unless another file (not this article's own) is already there."""
        if target.exists() and (entry is None or entry.path != target):
            raise LibraryError(
                409, f"{self._relative(target)} exists and is not an article with that id"
            )
        return target

    def _edit_target(self, entry: _Entry) -> Path:
        """Where an edit goes: the article's own file when it is Markdown; an HTML or text
        article becomes ``<id>.md`` (its old file is removed with the same change)."""
        if entry.path.suffix.lower() in MARKDOWN_SUFFIXES:
            return entry.path
        return self._target(entry.article.id)

    def _restore_target(self, stored: str | None, article_id: str) -> Path:
        if stored:
            path = (self.root / stored).resolve()
            if self.root in path.parents and path.suffix.lower() in ARTICLE_SUFFIXES:
                return path
        return self._target(article_id)

    def _relative(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _scan(self) -> dict[str, _Entry]:
        """Every article file under the folder by id (the first file wins a duplicate id, as
        in an ingest); files are parsed again only when their size or mtime changed."""
        with self._scan_lock:
            if not self.root.is_dir():
                return {}
            includes = find_includes_dir(self.root)
            entries: dict[str, _Entry] = {}
            seen: set[Path] = set()
            for path in discover_files(self.root):
                seen.add(path)
                try:
                    stat = path.stat()
                except OSError:
                    continue
                key = (stat.st_mtime_ns, stat.st_size)
                cached = self._cache.get(path)
                if cached is not None and cached[0] == key:
                    entry = cached[1]
                else:
                    entry = _read_entry(path, self.root, includes, stat.st_mtime)
                    self._cache[path] = (key, entry)
                if entry is not None and entry.article.id not in entries:
                    entries[entry.article.id] = entry
            for gone in [path for path in self._cache if path not in seen]:
                del self._cache[gone]
            return entries

    def _ledger_rows(self) -> dict[str, LedgerRow]:
        from ingest.ledger import Ledger

        if self._ledger is None:
            self._ledger = Ledger(self.settings.ledger_url)
        return self._ledger.rows()

    def _summary(
        self, entry: _Entry, latest: ArticleVersion | None, rows: dict[str, LedgerRow]
    ) -> ArticleSummary:
        article = entry.article
        row = rows.get(article.id)
        if latest is not None and latest.content_hash == content_hash(entry.text):
            updated_at, updated_by = _aware(latest.created_at), latest.actor
        else:
            updated_at, updated_by = datetime.fromtimestamp(entry.mtime, UTC), None
        return ArticleSummary(
            id=article.id,
            title=article.title,
            url=article.url,
            tags=list(article.tags),
            visibility=article.visibility,
            language=article.language,
            path=self._relative(entry.path),
            updated_at=updated_at,
            updated_by=updated_by,
            indexed=row is not None and not row.pending and row.chunk_count > 0,
            chunks=row.chunk_count if row is not None and not row.pending else 0,
        )

    def _out(self, entry: _Entry) -> ArticleOut:
        with self.sessions() as session:
            latest = _latest_versions(session, [entry.article.id]).get(entry.article.id)
        summary = self._summary(entry, latest, self._ledger_rows())
        return ArticleOut(
            **summary.model_dump(),
            body=_body_of(entry.path, entry.text, entry.article),
            version=latest.version if latest else 0,
        )


# --- plain functions ------------------------------------------------------------------------------


def render_article(article_id: str, data: ArticleIn) -> str:
    """The article file: YAML front matter (id, title, url, tags, visibility, language), then
    the Markdown body."""
    meta: dict[str, object] = {"id": article_id, "title": data.title}
    if data.url:
        meta["url"] = data.url
    if data.tags:
        meta["tags"] = list(data.tags)
    meta["visibility"] = data.visibility
    if data.language:
        meta["language"] = data.language
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000)
    return f"---\n{front}---\n\n{_normalise_body(data.body)}\n"


def _haystack(article: Article) -> str:
    return "\n".join([article.id, article.title, article.body, *article.tags]).lower()


def _body_of(path: Path, text: str, article: Article) -> str:
    """The Markdown an editor shows: the file's own body for Markdown, the loader's text for
    HTML and plain-text files (an edit turns those into Markdown)."""
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        try:
            return _normalise_body(split_front_matter(text, path)[1])
        except ArticleError:
            return article.body
    return article.body


def _read_entry(path: Path, root: Path, includes: Path | None, mtime: float) -> _Entry | None:
    try:
        raw = path.read_bytes()
        text = read_text(path)
        article = load_article(path, root, includes)
    except (OSError, ArticleError, SkipFile):
        return None
    return _Entry(path=path, raw=raw, text=text, article=article, mtime=mtime)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _apply_file(change: _Change) -> None:
    old = change.old
    if change.new_text is not None:
        assert change.target is not None
        _write_atomic(change.target, change.new_text.encode("utf-8"))
    change.applied = True
    if old is not None and (change.new_text is None or old.path != change.target):
        old.path.unlink(missing_ok=True)


def _undo_file(change: _Change) -> None:
    """Put the folder back as it was before ``change``."""
    if not change.applied:
        return
    old = change.old
    try:
        if change.target is not None and (old is None or old.path != change.target):
            change.target.unlink(missing_ok=True)
        if old is not None:
            _write_atomic(old.path, old.raw)
    except OSError:
        log.exception("could not restore %s", old.path if old else change.target)
    change.applied = False


def _raise_if_failed(change: _Change) -> None:
    if change.error:
        raise LibraryError(422, f"{change.article_id!r} was not published: {change.error}")


def _fail(change: _Change, reason: str) -> None:
    change.error = reason
    change.article = None
    _undo_file(change)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ()))
        message = str(first.get("msg", exc)).removeprefix("Value error, ")
        return f"{field}: {message}" if field else message
    return str(exc)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _latest_versions(session: Session, article_ids: Sequence[str]) -> dict[str, ArticleVersion]:
    if not article_ids:
        return {}
    latest: dict[str, ArticleVersion] = {}
    rows = session.scalars(
        select(ArticleVersion)
        .where(ArticleVersion.article_id.in_(list(article_ids)))
        .order_by(ArticleVersion.article_id, ArticleVersion.version.desc())
    )
    for row in rows:
        latest.setdefault(row.article_id, row)
    return latest


def _version(session: Session, article_id: str, number: int) -> ArticleVersion:
    row = session.scalar(
        select(ArticleVersion).where(
            ArticleVersion.article_id == article_id, ArticleVersion.version == number
        )
    )
    if row is None:
        raise LibraryError(404, f"{article_id!r} has no version {number}")
    return row


def _version_out(row: ArticleVersion) -> VersionOut:
    body: str | None = None
    meta: dict[str, object] = {}
    if row.content is not None:
        try:
            meta, body = split_front_matter(row.content)
            body = _normalise_body(body)
        except ArticleError:
            body = row.content
    tags = meta.get("tags")
    tag_list = [str(t) for t in tags] if isinstance(tags, list) else []
    if isinstance(tags, str):
        tag_list = [t.strip() for t in tags.split(",") if t.strip()]
    return VersionOut(
        id=row.article_id,
        version=row.version,
        action=row.action,
        at=_aware(row.created_at),
        by=row.actor,
        title=row.title,
        path=row.path,
        body=body,
        url=str(meta["url"]) if meta.get("url") else None,
        tags=tag_list,
        visibility=str(meta["visibility"]) if meta.get("visibility") else None,
        language=str(meta["language"]) if meta.get("language") else None,
        content_hash=row.content_hash,
        previous_hash=row.previous_hash,
    )
