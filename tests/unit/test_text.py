"""The text toolkit (bot/core/text.py): one stemmer, one stop-word list, one sentence rule."""

from __future__ import annotations

import pytest

from bot.core.text import (
    REPHRASE_NOISE,
    STOPWORDS,
    content_similarity,
    content_words,
    jaccard,
    normalise,
    sentences,
    split_sentences,
    stem,
    tokenize,
)


@pytest.mark.parametrize(
    ("word", "stemmed"),
    [
        ("refunds", "refund"),
        ("returning", "return"),
        ("returned", "return"),
        ("deliveries", "delivery"),
        ("address", "address"),  # -ss is not a plural
        ("addresses", "addresse"),  # consistent with itself, which is all matching needs
        ("bus", "bus"),  # too short to strip
        ("ring", "ring"),
        ("used", "used"),
    ],
)
def test_stem(word: str, stemmed: str) -> None:
    assert stem(word) == stemmed


def test_tokenize_is_what_bm25_indexes() -> None:
    assert tokenize("How do I get my refunds?") == ["get", "refund"]
    assert tokenize("Returning items") == tokenize("return item")
    assert tokenize("I can't log in") == ["cant", "log"]  # "not"-words keep their meaning
    assert tokenize("Is it not here?") == ["not"]


def test_rephrase_noise_is_separate_from_the_bm25_stop_words() -> None:
    assert not REPHRASE_NOISE & STOPWORDS
    assert "please" in REPHRASE_NOISE and "please" in tokenize("please")
    assert content_words("Please, how do I change my address again?") == {"change", "address"}


def test_normalise() -> None:
    assert normalise("  I’d   LIKE\nto ") == "i'd like to"


def test_content_similarity() -> None:
    assert content_similarity("change delivery address", "address for delivery change") == 1.0
    assert content_similarity("Where is my parcel?", "thanks!") == 0.0
    assert content_similarity("how do I", "what is it") == 0.0  # nothing to compare
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), {"a"}) == 0.0


def test_sentences_break_before_a_capital_or_digit_only() -> None:
    assert sentences("Open Settings. Then tap Privacy!  2 steps left? e.g. this stays.") == [
        "Open Settings.",
        "Then tap Privacy!",
        "2 steps left? e.g. this stays.",
    ]
    assert sentences("Version 2.1 is out.") == ["Version 2.1 is out."]
    assert sentences("  ") == []


def test_split_sentences_takes_lines_and_list_items_and_drops_fragments() -> None:
    body = "Returns are free within 30 days. Refunds take 5 days.\n- Keep the receipt safe\n1) Yes."
    assert split_sentences(body) == [
        "Returns are free within 30 days.",
        "Refunds take 5 days.",
        "Keep the receipt safe",
    ]
