"""The units retrieval compares a question with: one chunk's title/heading line and its
sentences or list items.

One definition, used wherever unit vectors are computed (the ingest that stores them beside
the chunks, ``ingest.unitvectors``, and the retriever when a stored vector is missing), so every
place embeds the same texts for the same chunk. Also what says whether an article is written as
example questions (an FAQ entry) or as prose (``example_share``), which the answerability score
needs to read both on one scale.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.core.text import split_sentences


def heading_text(text: str, metadata: dict[str, Any]) -> str:
    """The title and heading path the chunker put before the body (one unit of its own: a
    question often names the topic the way the title does, "set the clock" vs. "Setting the
    current time")."""
    start = metadata.get("body_start")
    if isinstance(start, int) and 0 < start <= len(text):
        prefix = text[:start]
    else:
        prefix = f"{metadata.get('title') or ''}\n{metadata.get('heading') or ''}"
    return " - ".join(line.strip() for line in prefix.split("\n") if line.strip())


def body_text(text: str, metadata: dict[str, Any]) -> str:
    """Chunk text without the title/heading prefix (``body_start`` from the chunker)."""
    start = metadata.get("body_start")
    return text[start:] if isinstance(start, int) and 0 <= start <= len(text) else text


def chunk_units(text: str, metadata: dict[str, Any]) -> tuple[str, list[str]]:
    """(title/heading line or "", the body's units) of one chunk."""
    return heading_text(text, metadata), split_sentences(body_text(text, metadata))


_CUSTOMER_VOICE = re.compile(
    r"^(?:how|what|why|when|where|which|who|can|could|do|does|did|is|are|was|were|will"
    r"|would|should|may|have|has|am)\b|\?\s*$|\b(?:i|i'm|i've|i'd|i'll|my|me|mine)\b",
    re.I,
)


def is_customer_voice(unit: str) -> bool:
    """A question or a first-person line ("I still haven't got my card"): how customers write,
    not how a help center explains."""
    return bool(_CUSTOMER_VOICE.search(unit.strip()))


def example_share(units: Sequence[str]) -> float:
    """Share of an article's body units written in the customer's voice: about 1 for an FAQ
    entry that lists example questions, near 0 for prose (the demo help center: 4 %, its few
    hits being headings such as "I think someone else got into my account")."""
    return sum(1 for unit in units if is_customer_voice(unit)) / len(units) if units else 0.0
