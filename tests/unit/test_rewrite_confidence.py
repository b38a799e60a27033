"""Pure answering logic: BM25 terms, follow-up rewriting, the answer/escalate verdict."""

from __future__ import annotations

from bot.core.schemas import Turn
from bot.knowledge.answerability import (
    Verdict,
    article_score,
    decide,
    declined_by_model,
    failed,
    judge,
)
from bot.knowledge.intents import asks_for_human
from bot.knowledge.retrieval import ArticleHit
from bot.knowledge.rewrite import heuristic_rewrite, looks_dependent
from bot.knowledge.text import tokenize


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
    assert asks_for_human("I want to speak to a real person")
    assert asks_for_human("live agent")
    assert not asks_for_human("How do I contact the seller about a human-size bean bag?")


def test_the_rule_replayed_by_the_evaluation_is_the_rule_decide_applies() -> None:
    hit = _hit(0.6, 0.5)
    for threshold in (0.3, 0.5, 0.7, 0.9):
        for question in ("How do refunds work?", "talk to a human"):
            expected = decide(question, [hit], threshold)
            assert judge(article_score(hit), asks_for_human(question), threshold) == expected
        assert judge(None, False, threshold) == decide("anything", [], threshold)


def test_every_escalation_verdict_comes_from_one_constructor() -> None:
    answered = Verdict(0.8, False, None)
    # The LLM's ESCALATE: the articles hold no answer after all, whatever the score said.
    assert declined_by_model(answered) == Verdict(0.4, True, "no_knowledge")
    # A model that broke off mid-answer.
    assert failed(answered) == Verdict(0.8, True, "error")
