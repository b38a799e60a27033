"""Split articles into heading-aware chunks that fit the embedder.

Why this shape:

- **Bounded by the model's real limit.** all-MiniLM-L6-v2 silently truncates input past 256
  word pieces (including [CLS] and [SEP]); text past the cut would be stored but never embedded,
  so it could never be found. Every chunk's full text, title and heading prefix included, is
  measured with the model's own tokenizer and kept within ``max_tokens``.
- **Title and heading path in every chunk.** "How long does it take?" only matches a chunk that
  says what "it" is: the prefix ``Refunds\\nHow long it takes`` gives a section the context its
  body leaves implicit. The same path is in the metadata (``heading``) for citations.
- **Sections, never articles, are merged or split.** A chunk never crosses an article; within a
  long section, consecutive chunks share a small overlap so a sentence cut at a boundary is whole
  in one of them. Small articles stay one chunk, headings inline.
- **Stable ids** ``{article_id}#{index}``: a re-run produces the same ids, so writes are
  idempotent upserts and a crashed run is repaired by writing the same ids again.

Token counts are additive over whitespace-joined pieces for a WordPiece tokenizer (it splits on
whitespace first), which lets the packer sum counts instead of re-tokenizing every candidate; the
final text of each chunk is still measured once as a guard.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.loaders import Article, iter_headings

CHUNKER_VERSION = "1"
"""Bump when chunk text or metadata changes shape: the ledger then re-indexes every article."""

TokenCounter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


@dataclass(frozen=True)
class Chunk:
    """One piece of an article, as stored in Chroma."""

    id: str
    text: str
    metadata: dict[str, Any] = field(hash=False)

    @property
    def article_id(self) -> str:
        return str(self.metadata["article_id"])


def chunk_id(article_id: str, index: int) -> str:
    """The Chroma id of an article's ``index``-th chunk."""
    return f"{article_id}#{index}"


@dataclass
class _Section:
    path: list[str]
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines).strip()


@dataclass(frozen=True)
class _Piece:
    text: str
    tokens: int
    joiner: str  # what separates it from the piece before: "\n\n", "\n" or " "


def split_sections(article: Article) -> list[tuple[list[str], str]]:
    """``(heading_path, text)`` per section, in order; headingless text gets ``[]``.

    A level-1 heading equal to the title is dropped: it repeats what every chunk already says.
    """
    lines = article.body.split("\n")
    headings = {number: (level, text) for number, level, text in iter_headings(article.body)}
    sections: list[_Section] = [_Section(path=[])]
    stack: list[tuple[int, str]] = []
    title_key = _normalise(article.title)
    for number, line in enumerate(lines):
        if number not in headings:
            sections[-1].lines.append(line)
            continue
        level, text = headings[number]
        while stack and stack[-1][0] >= level:
            stack.pop()
        if not (level == 1 and not stack and _normalise(text) == title_key):
            stack.append((level, text))
        sections.append(_Section(path=[heading for _, heading in stack]))
    return [(section.path, section.text) for section in sections if section.text]


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _prefix(title: str, path: Sequence[str]) -> str:
    heading = " > ".join(path)
    return f"{title}\n{heading}\n\n" if heading else f"{title}\n\n"


def _pieces(text: str, budget: int, count: TokenCounter) -> list[_Piece]:
    """Break ``text`` into pieces of at most ``budget`` tokens, preferring large natural units:
    paragraphs, then lines, then sentences, then word windows."""
    pieces: list[_Piece] = []
    for paragraph in (p.strip("\n") for p in text.split("\n\n")):
        if not paragraph.strip():
            continue
        _split_unit(paragraph, "\n\n", budget, count, pieces, level=0)
    return pieces


_SPLITTERS: tuple[tuple[Callable[[str], list[str]], str], ...] = (
    (lambda text: text.split("\n"), "\n"),
    (lambda text: _SENTENCE_END.split(text), " "),
)


def _split_unit(
    text: str, joiner: str, budget: int, count: TokenCounter, out: list[_Piece], level: int
) -> None:
    tokens = count(text)
    if tokens <= budget:
        out.append(_Piece(text, tokens, joiner))
        return
    if level < len(_SPLITTERS):
        split, inner_joiner = _SPLITTERS[level]
        parts = [part for part in split(text) if part.strip()]
        if len(parts) > 1:
            for number, part in enumerate(parts):
                _split_unit(
                    part, joiner if number == 0 else inner_joiner, budget, count, out, level + 1
                )
            return
        _split_unit(text, joiner, budget, count, out, level + 1)
        return
    _split_words(text, joiner, budget, count, out)


def _split_words(
    text: str, joiner: str, budget: int, count: TokenCounter, out: list[_Piece]
) -> None:
    """Last resort for a run-on sentence or a long table row: windows of whole words."""
    window: list[str] = []
    window_tokens = 0
    first = True

    def emit() -> None:
        nonlocal window, window_tokens, first
        out.append(_Piece(" ".join(window), window_tokens, joiner if first else " "))
        window, window_tokens, first = [], 0, False

    for word in text.split():
        word_tokens = count(word)
        if word_tokens > budget:  # a pathological "word" (a huge URL): cut by characters
            if window:
                emit()
            cut = max(1, len(word) * budget // (word_tokens + 1))
            for start in range(0, len(word), cut):
                part_joiner = joiner if first else " "
                _split_words(word[start : start + cut], part_joiner, budget, count, out)
                first = False
            continue
        if window and window_tokens + word_tokens > budget:
            emit()
        window.append(word)
        window_tokens += word_tokens
    if window:
        emit()


def _pack(pieces: list[_Piece], budget: int, overlap: int) -> list[str]:
    """Greedy packing of pieces into texts of at most ``budget`` tokens, with a small overlap
    of whole trailing pieces carried into the next text."""
    texts: list[str] = []
    current: list[_Piece] = []
    current_tokens = 0
    for piece in pieces:
        if current and current_tokens + piece.tokens > budget:
            texts.append(_join(current))
            carried: list[_Piece] = []
            carried_tokens = 0
            for previous in reversed(current):
                if carried_tokens + previous.tokens > overlap:
                    break
                carried.insert(0, previous)
                carried_tokens += previous.tokens
            if carried_tokens + piece.tokens > budget:
                carried, carried_tokens = [], 0
            current, current_tokens = carried, carried_tokens
        current.append(piece)
        current_tokens += piece.tokens
    if current:
        texts.append(_join(current))
    return texts


def _join(pieces: list[_Piece]) -> str:
    return "".join((piece.joiner if n else "") + piece.text for n, piece in enumerate(pieces))


def chunk_article(
    article: Article, count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """The chunks of one article, each at most ``max_tokens`` word pieces including its prefix."""
    sections = split_sections(article)
    if not sections:
        return []
    # Whole article as one chunk when it fits: headings stay inline as plain lines.
    whole = "\n\n".join(
        ("\n".join(path[-1:]) + "\n" if path else "") + text for path, text in sections
    )
    whole_text = _prefix(article.title, []) + whole
    planned: list[tuple[list[str], str, str]] = []
    if count_tokens(whole_text) <= max_tokens:
        planned.append(([], _prefix(article.title, []), whole))
    else:
        for path, text in sections:
            prefix = _prefix(article.title, path)
            budget = max_tokens - count_tokens(prefix)
            if budget < 16:  # an absurdly long heading path: keep only the last heading
                path = path[-1:]
                prefix = _prefix(article.title, path)
                budget = max(16, max_tokens - count_tokens(prefix))
            for body in _pack(_pieces(text, budget, count_tokens), budget, overlap_tokens):
                planned.append((path, prefix, body))

    chunks: list[Chunk] = []
    for index, (path, prefix, body) in enumerate(planned):
        text = _fit(prefix, body, max_tokens, count_tokens)
        chunks.append(
            Chunk(
                id=chunk_id(article.id, index),
                text=text,
                metadata={
                    "source": article.id,
                    "article_id": article.id,
                    "title": article.title,
                    "url": article.url or "",
                    "heading": " > ".join(path),
                    "chunk_index": index,
                    "tags": ",".join(article.tags),
                    "visibility": article.visibility,
                    "language": article.language or "",
                    "body_start": len(prefix),
                    "content_hash": article.content_hash,
                },
            )
        )
    for chunk in chunks:
        chunk.metadata["chunk_count"] = len(chunks)
    return chunks


def _fit(prefix: str, body: str, max_tokens: int, count_tokens: TokenCounter) -> str:
    """Guard: trim words off the end should additivity ever fail for some odd text."""
    text = prefix + body
    while count_tokens(text) > max_tokens and " " in body:
        body = body.rsplit(" ", 1)[0]
        text = prefix + body
    return text


def chunk_articles(
    articles: Sequence[Article], count_tokens: TokenCounter, max_tokens: int, overlap_tokens: int
) -> dict[str, list[Chunk]]:
    """Chunks per article id, in the given order."""
    return {
        article.id: chunk_article(article, count_tokens, max_tokens, overlap_tokens)
        for article in articles
    }
