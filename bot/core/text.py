"""The one text toolkit: words, stems, stop words, sentences and word overlap.

Retrieval (BM25 and term coverage), the extractive answer, rephrase detection and the deflection
ledger all compare customer text with other text; they use these functions so that "the same
word" and "a sentence" mean the same thing everywhere. The rules are the ones retrieval was
measured with (the quality bench), so a change here moves retrieval figures: run the bench.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
"""A word of lower-cased text; an apostrophe keeps "can't" and "i'm" whole."""

# Function words that carry no topic; kept short on purpose ("not", "no", "can't" stay out of it
# because they change meaning and BM25's idf already discounts common words).
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does doing for from had has
    have having he her here hers him his how i i'm if in into is it it's its me my of on or our
    ours she so than that the their them then there these they this those to too us was we were
    what when where which who whom why will with would you your yours i've i'd you're""".split()  # noqa: SIM905
)

# Words a customer adds when asking the same thing again ("please", "again", "still", "just")
# or that flip between two phrasings of one question ("get", "any", "not"). They are noise when
# judging "is this the same question?", but not BM25 stop words: there idf already weighs them
# down, and "not"/"no" change what a question asks.
REPHRASE_NOISE = frozenset(
    "should not no please pls just still again already really any some get got".split()  # noqa: SIM905
)

SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[*]?[A-Z0-9])")
"""Where one sentence ends and the next begins: end punctuation, then a capital or a digit (so
"e.g. this" and "version 2.1" stay whole)."""

LIST_ITEM = re.compile(r"^\s*([-*+]|\d+[.)])\s+(.*)$")
"""A Markdown list item: group 1 is the marker ("-", "1."), group 2 the item's text."""


def normalise(text: str) -> str:
    """Lower case, typographic apostrophes made plain, runs of whitespace made one space: what
    the customer-text detectors match their patterns against."""
    return re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip()


def stem(word: str) -> str:
    """A deliberately tiny suffix stripper: plurals and -ing/-ed, enough to match
    "refunds"/"refund" and "returning"/"return" without a stemming library."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased, stop-word-free, lightly stemmed terms for BM25 and term coverage."""
    return [
        stem(word.replace("'", "")) for word in WORD.findall(text.lower()) if word not in STOPWORDS
    ]


def content_words(text: str) -> set[str]:
    """The stems that say what a message is about: no stop words, no rephrase noise, no
    single letters."""
    return {
        stem(word.replace("'", ""))
        for word in WORD.findall(normalise(text))
        if word not in STOPWORDS and word not in REPHRASE_NOISE and len(word) > 1
    }


def jaccard(a: set[str], b: set[str]) -> float:
    """Shared items over all items; 0 when either set is empty."""
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def content_similarity(a: str, b: str) -> float:
    """Jaccard overlap of two messages' content words: cheap, explainable, and good enough to
    tell "asked the same thing again" from "asked something else"."""
    return jaccard(content_words(a), content_words(b))


def sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph, stripped, without empty pieces."""
    return [piece.strip() for piece in SENTENCE_BREAK.split(paragraph) if piece.strip()]


def split_sentences(text: str, min_chars: int = 12) -> list[str]:
    """Lines and sentences of a chunk body, list markers removed: the units a question is
    matched against. Pieces shorter than ``min_chars`` ("Yes.", "Note:") match anything."""
    units: list[str] = []
    for line in text.split("\n"):
        item = LIST_ITEM.match(line)
        body = item.group(2) if item else line
        units.extend(s for s in sentences(body.strip()) if len(s) >= min_chars)
    return units
