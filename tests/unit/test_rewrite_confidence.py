"""Pure answering logic: BM25 terms, follow-up rewriting, the answer/escalate verdict."""

from __future__ import annotations

from bot.core.schemas import Turn
from bot.knowledge.answerability import article_score, decide, is_customer_request
from bot.knowledge.retrieval import ArticleHit, tokenize
from bot.knowledge.rewrite import heuristic_rewrite, looks_dependent


def _hit(similarity: float, coverage: float) -> ArticleHit:
    return ArticleHit("a", "A", None, 0.1, similarity, coverage)


def test_tokenize_drops_function_words_and_folds_plurals() -> None:
    assert tokenize("How do I get my refunds?") == ["get", "refund"]
    assert tokenize("Returning items") == tokenize("return item")


def test_standalone_question_is_not_rewritten() -> None:
    assert heuristic_rewrite("How do I reset my password?", []) == "How do I reset my password?"


def test_follow_up_gets_the_topic_from_the_previous_customer_turn() -> None:
    history = [
        Turn(role="user", content="Can I return a frying pan?"),
        Turn(role="assistant", content="Yes, within 30 days of delivery."),
    ]
    query = heuristic_rewrite("and how long does that take?", history)
    assert query.startswith("and how long does that take?")
    assert "return a frying pan" in query
    assert "30 days" not in query  # assistant turns would drag retrieval back


def test_dependent_question_detection() -> None:
    assert looks_dependent("what about express?")
    assert looks_dependent("How much does it cost?")
    assert not looks_dependent("How do I change the email address on my account?")


def test_score_grows_with_similarity_and_coverage() -> None:
    assert article_score(_hit(0.1, 0.0)) == 0.0
    assert article_score(_hit(0.9, 1.0)) == 1.0
    assert article_score(_hit(0.5, 0.2)) < article_score(_hit(0.5, 0.8))


def test_verdicts_and_reasons() -> None:
    assert decide("anything", [], 0.5).reason == "no_knowledge"
    strong = decide("How do refunds work?", [_hit(0.8, 1.0)], 0.5)
    assert (strong.escalate, strong.reason) == (False, None)
    weak = decide("How do refunds work?", [_hit(0.4, 0.3)], 0.5)
    assert (weak.escalate, weak.reason) == (True, "low_confidence")
    unrelated = decide("capital of France?", [_hit(0.1, 0.0)], 0.5)
    assert unrelated.reason == "no_knowledge"
    human = decide("Can I talk to a human please?", [_hit(0.8, 1.0)], 0.5)
    assert (human.escalate, human.reason) == (True, "customer_request")


def test_customer_request_phrases() -> None:
    assert is_customer_request("I want to speak to a real person")
    assert is_customer_request("live agent")
    assert not is_customer_request("How do I contact the seller about a human-size bean bag?")
