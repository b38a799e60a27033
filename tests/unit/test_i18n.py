"""The bot's own texts in the customer's language (bot.core.i18n), and the article language
preference of retrieval's caller."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.core.i18n import CATALOGUES, resolve_locale, translate
from bot.handoff.hours import parse_hours
from bot.knowledge.answerers import prefer_language
from bot.knowledge.retrieval import ArticleHit, ChunkHit


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("de", "de"),
        ("de-AT", "de"),
        ("DE_ch", "de"),
        ("fr-CA", "fr"),
        ("es", "es"),
        ("pt-BR", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_a_tag_resolves_to_its_language_or_english(tag: str | None, expected: str) -> None:
    assert resolve_locale(tag) == expected


def test_every_catalogue_has_every_key_with_the_same_placeholders() -> None:
    english = CATALOGUES["en"]
    for locale, catalogue in CATALOGUES.items():
        assert catalogue.keys() == english.keys(), locale
        for key, text in catalogue.items():
            holes = set(re.findall(r"\{\w+\}", text))
            assert holes == set(re.findall(r"\{\w+\}", english[key])), (locale, key)


def test_translate_fills_placeholders_and_falls_back_to_english() -> None:
    assert translate("agent_joined", "de-AT", agent="Ana") == (
        "Ana aus unserem Team ist der Unterhaltung beigetreten."
    )
    assert (
        translate("contact_saved", "ja", email="a@b.c") == "Thanks, we'll also follow up at a@b.c."
    )
    assert translate("shortly") == "shortly"


def test_the_next_opening_is_described_in_the_customers_language() -> None:
    hours = parse_hours("Mon-Fri 09:00-17:00", "Europe/Berlin")
    friday_night = datetime(2026, 1, 2, 20, 0, tzinfo=UTC)  # a Friday
    assert hours.describe_next(friday_night) == "on Monday at 09:00 (Europe/Berlin)"
    assert hours.describe_next(friday_night, "de") == "am Montag um 09:00 (Europe/Berlin)"
    assert hours.describe_next(friday_night, "es-MX") == "el lunes a las 09:00 (Europe/Berlin)"
    thursday_night = datetime(2026, 1, 1, 20, 0, tzinfo=UTC)
    assert hours.describe_next(thursday_night, "fr") == "demain à 09:00 (Europe/Berlin)"


def hit(article_id: str, language: str) -> ArticleHit:
    chunk = ChunkHit(f"{article_id}#0", "text", {"article_id": article_id, "language": language})
    return ArticleHit(article_id, article_id, None, 1.0, 0.5, 0.5, chunks=[chunk])


def test_articles_in_another_language_are_left_out_when_one_in_theirs_exists() -> None:
    hits = [hit("refunds-en", "en"), hit("refunds-de", "de"), hit("general", "")]
    assert [h.article_id for h in prefer_language(hits, "de-AT")] == ["refunds-de", "general"]
    # None in the customer's language: everything stays (an answer beats none).
    assert prefer_language(hits, "fr") == hits
    assert prefer_language(hits, None) == hits
