"""One answer threshold for FAQ entries and for prose (``PROSE_OFFSET``)."""

from __future__ import annotations

import pytest

from bot.knowledge.answerability import (
    DENSE_CEIL,
    DENSE_FLOOR,
    NO_KNOWLEDGE_SCORE,
    PROSE_OFFSET,
    article_score,
)
from bot.knowledge.retrieval import ArticleHit
from ingest.units import example_share, is_customer_voice


@pytest.mark.parametrize(
    "unit",
    [
        "I am still waiting on my card",
        "How do I top up by bank transfer",
        "where is my money?",
        "Can I change my PIN at an ATM",
    ],
)
def test_example_questions_are_in_the_customer_voice(unit: str) -> None:
    assert is_customer_voice(unit)


@pytest.mark.parametrize(
    "unit",
    [
        "You can return most items within 30 days of delivery.",
        "Refunds reach PayPal within 24 hours.",
        "Select Delete account and confirm with your password.",
    ],
)
def test_help_center_prose_is_not(unit: str) -> None:
    assert not is_customer_voice(unit)


def test_example_share_of_an_faq_entry_and_of_prose() -> None:
    faq = ["I still have not got my card", "when will my card arrive", "card not here yet?"]
    prose = ["Cards arrive within 5 working days.", "Track the card in the app.", *faq[:1]]
    assert example_share(faq) == 1.0
    assert example_share(prose) == pytest.approx(1 / 3)
    assert example_share([]) == 0.0


def hit(example_share: float, similarity: float = 0.5) -> ArticleHit:
    return ArticleHit(
        article_id="a",
        title="A",
        url=None,
        fused=1.0,
        dense_similarity=similarity,
        term_coverage=0.0,
        sentence_similarity=similarity,
        example_share=example_share,
    )


def test_prose_is_moved_onto_the_scale_of_example_questions() -> None:
    faq, prose = article_score(hit(1.0)), article_score(hit(0.0))
    # the similarity moves by PROSE_OFFSET; the score by its share of the mapped range (x 0.9)
    expected = 0.9 * PROSE_OFFSET / (DENSE_CEIL - DENSE_FLOOR)
    assert prose - faq == pytest.approx(expected, abs=1e-3)
    assert article_score(hit(0.5)) == pytest.approx((faq + prose) / 2, abs=1e-3)


def test_unrelated_prose_stays_no_knowledge() -> None:
    """At the floor of the similarity scale the offset is nothing: an off-topic question that
    lands on a prose article is still "no knowledge" (a content gap), not "low confidence"."""
    assert article_score(hit(0.0, similarity=0.2)) == article_score(hit(1.0, similarity=0.2))
    assert article_score(hit(0.0, similarity=0.25)) < NO_KNOWLEDGE_SCORE
