"""Unit vectors stored beside the chunks, so no process embeds a sentence twice.

Retrieval compares a question with each candidate chunk's *units* (its title/heading line and its
sentences or list items, ``ingest.units.chunk_units``). Embedding them is most of what a
fresh process's first question used to cost (about 700 units, seconds on a CPU), so the ingest
pipeline embeds them once, when it writes the chunk, and keeps them in Chroma itself: every
process (the service, ``supportbot ask``/``eval``, several services sharing a Chroma server)
reads them instead of embedding them again.

The records live in a sibling collection, ``<collection>__units``, one record per unit:

==============  ================================================================================
id              ``<chunk id>::u<position>`` (position 0 is the title/heading line when it has one)
embedding       the unit's vector (the chunk collection's model, L2-normalised)
document        the unit's text
``chunk_id``    the chunk the unit belongs to; deletions go by it (``where``)
``position``    the unit's place in the chunk's list
``heading``     whether the chunk's list starts with its title/heading line
``format``      :data:`UNITS_FORMAT`
==============  ================================================================================

A stored vector is used only when its text is, word for word, the unit the reader computes now
from the chunk (with the current ``chunk_units``): an edited chunk, or a changed definition of a
unit, makes the stored vectors stale, never wrong; the reader then embeds those units itself. The
collection's metadata records the format, the embedder and a fingerprint of the unit definition
(:func:`definition_print`, the units it makes of a fixed sample); ``units_format`` is set only
once the collection covers every chunk. An ingest that finds the collection missing (a store
ingested before unit vectors existed), unfinished, or made with another format, model or unit
definition builds it again, unchanged chunks included.

``ingest.units`` holds the one definition of the units (``chunk_units``), used here and by
retrieval, so a plain ``supportbot ingest`` stores the units retrieval compares with. The
pipeline takes the splitter as a parameter only so that a test can stand in a changed
definition.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Where

log = logging.getLogger(__name__)

UNITS_SUFFIX = "__units"
UNITS_FORMAT = 1
"""Bump when what a unit record means changes (ids, metadata, how texts are grouped): every
store's unit collection is then rebuilt by its next ingest."""

READ_BATCH = 2_000
"""Unit ids per ``get`` when a reader loads stored vectors."""

WHERE_BATCH = 500
"""Chunk ids per ``where={"chunk_id": {"$in": ...}}`` on the unit collection."""

UnitSplitter = Callable[[str, dict[str, Any]], tuple[str, list[str]]]
"""``chunk_units(text, metadata) -> (title/heading line or "", body units)``."""


def default_splitter() -> UnitSplitter:
    """``ingest.units.chunk_units``: the units retrieval compares a question with."""
    from ingest.units import chunk_units

    return chunk_units


DEFINITION_SAMPLE = (
    "Returns and refunds\n\nReturns > Exceptions\n\nYou can return most items within 30 days, e.g. "
    "shoes. Refunds take 5-7 business days (v2.1 and later)! Which items can't be returned?\n"
    "- Opened food and drink\n* Gift cards\n1. Personalised items\n\n"
    "| Payment method | Time |\n|---|---|\n| PayPal | 24 hours |\n"
    "Dr. Smith wrote this.\nA soft\nline break."
)
DEFINITION_METADATA: dict[str, Any] = {
    "title": "Returns and refunds",
    "heading": "Returns > Exceptions",
    "body_start": len("Returns and refunds\n\nReturns > Exceptions\n\n"),
}


def definition_print(splitter: UnitSplitter) -> str:
    """A fingerprint of what ``splitter`` makes of a fixed sample chunk: when the definition of
    a unit changes, this usually does too, and the next ingest re-embeds every chunk's units."""
    heading, body = splitter(DEFINITION_SAMPLE, dict(DEFINITION_METADATA))
    payload = json.dumps([UNITS_FORMAT, heading, body], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def units_collection_name(collection: str) -> str:
    return f"{collection}{UNITS_SUFFIX}"


def unit_id(chunk_id: str, position: int) -> str:
    return f"{chunk_id}::u{position}"


@dataclass
class ChunkUnits:
    """One chunk's units: their texts (heading line first when ``heading``) and vectors."""

    chunk_id: str
    texts: list[str]
    heading: bool
    vectors: Any = None  # float32 array, one row per text; None when there are no texts


def split_chunk(
    splitter: UnitSplitter, chunk_id: str, text: str, metadata: Mapping[str, Any]
) -> ChunkUnits:
    """One chunk's units, not embedded yet: the title/heading line first when it has one, then
    the non-empty body units."""
    heading, body = splitter(text, dict(metadata))
    return ChunkUnits(chunk_id, [u for u in (heading, *body) if u], bool(heading))


# --- the collection ------------------------------------------------------------------------


def find_units_collection(client: ClientAPI, collection: str) -> Collection | None:
    """The unit collection of ``collection``, None when there is none yet."""
    from chromadb.errors import NotFoundError

    try:
        return client.get_collection(units_collection_name(collection), embedding_function=None)
    except (NotFoundError, ValueError):
        return None


def units_of(client: ClientAPI, collection: Any) -> Collection | None:
    """The unit collection beside ``collection`` in the store ``client`` opens; None when there
    is none (a store ingested before unit vectors existed), or ``client`` holds another
    collection of that name (not the store ``collection`` comes from)."""
    name = getattr(collection, "name", None)
    if not isinstance(name, str):
        return None
    try:
        if client.get_collection(name, embedding_function=None).id != collection.id:
            return None
        return find_units_collection(client, name)
    except Exception:  # a reader only loses speed: it embeds the units itself
        log.info("no unit vectors for %s", name, exc_info=True)
        return None


def is_complete(units: Collection | None, embedder_name: str, definition: str) -> bool:
    """Does ``units`` cover every chunk, in this format, with this model's vectors, made by
    this definition of a unit (:func:`definition_print`)?"""
    if units is None:
        return False
    found = units.metadata or {}
    return (
        found.get("units_format") == UNITS_FORMAT
        and found.get("embedder") == embedder_name
        and found.get("definition") == definition
    )


def create_units_collection(client: ClientAPI, collection: str, embedder_name: str) -> Collection:
    """A new, empty unit collection, not yet marked complete (:func:`mark_complete`)."""
    name = units_collection_name(collection)
    if find_units_collection(client, collection) is not None:
        client.delete_collection(name)
    return client.create_collection(
        name=name,
        metadata={"embedder": embedder_name, "units_format": 0},
        embedding_function=None,
    )


def mark_complete(units: Collection, embedder_name: str, definition: str) -> None:
    units.modify(
        metadata={
            "embedder": embedder_name,
            "units_format": UNITS_FORMAT,
            "definition": definition,
        }
    )


# --- reading and writing -------------------------------------------------------------------


def read_units(units: Collection, wanted: Sequence[ChunkUnits]) -> list[ChunkUnits]:
    """Fill ``vectors`` of the wanted chunks whose stored units are exactly their texts; returns
    those (the others are missing or stale)."""
    import numpy as np

    ids = [unit_id(c.chunk_id, i) for c in wanted for i in range(len(c.texts))]
    stored: dict[str, tuple[str, Any]] = {}
    for start in range(0, len(ids), READ_BATCH):
        got = units.get(ids=ids[start : start + READ_BATCH], include=["documents", "embeddings"])
        documents = got["documents"] or []
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        for record, document, vector in zip(got["ids"], documents, embeddings, strict=True):
            stored[record] = (document or "", vector)
    found: list[ChunkUnits] = []
    for chunk in wanted:
        if not chunk.texts:
            continue
        rows = [stored.get(unit_id(chunk.chunk_id, i)) for i in range(len(chunk.texts))]
        if all(
            row is not None and row[0] == text for row, text in zip(rows, chunk.texts, strict=True)
        ):
            chunk.vectors = np.asarray(
                [row[1] for row in rows if row is not None], dtype=np.float32
            )
            found.append(chunk)
    return found


def _of_chunks(chunk_ids: Sequence[str]) -> Where:
    return cast("Where", {"chunk_id": {"$in": list(chunk_ids)}})


def stored_vectors(units: Collection | None, chunk_ids: Sequence[str]) -> dict[str, Any]:
    """Unit text -> stored vector, over every unit of ``chunk_ids`` (an edit reuses the vectors
    of the sentences it kept)."""
    known: dict[str, Any] = {}
    if units is None:
        return known
    for start in range(0, len(chunk_ids), WHERE_BATCH):
        got = units.get(
            where=_of_chunks(chunk_ids[start : start + WHERE_BATCH]),
            include=["documents", "embeddings"],
        )
        documents = got["documents"] or []
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        for document, vector in zip(documents, embeddings, strict=True):
            if document:
                known[document] = vector
    return known


def delete_units(units: Collection | None, chunk_ids: Sequence[str]) -> None:
    """Remove every unit record of ``chunk_ids``."""
    if units is None:
        return
    for start in range(0, len(chunk_ids), WHERE_BATCH):
        units.delete(where=_of_chunks(chunk_ids[start : start + WHERE_BATCH]))


def write_units(units: Collection, chunks: Iterable[ChunkUnits], batch: int) -> int:
    """Replace the unit records of ``chunks`` with theirs; returns the records written."""
    chunks = list(chunks)
    delete_units(units, [c.chunk_id for c in chunks])
    ids: list[str] = []
    documents: list[str] = []
    metadatas: list[Mapping[str, str | int | bool]] = []
    vectors: list[Any] = []
    for chunk in chunks:
        for position, text in enumerate(chunk.texts):
            ids.append(unit_id(chunk.chunk_id, position))
            documents.append(text)
            metadatas.append(
                {
                    "chunk_id": chunk.chunk_id,
                    "position": position,
                    "heading": chunk.heading,
                    "format": UNITS_FORMAT,
                }
            )
            vectors.append(chunk.vectors[position])
    for start in range(0, len(ids), batch):
        units.upsert(
            ids=ids[start : start + batch],
            documents=documents[start : start + batch],
            metadatas=metadatas[start : start + batch],  # type: ignore[arg-type]
            embeddings=vectors[start : start + batch],
        )
    return len(ids)
