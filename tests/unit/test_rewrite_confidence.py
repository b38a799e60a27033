"""Pure answering logic: BM25 terms, follow-up rewriting, the answer/escalate verdict."""

from __future__ import annotations

from bot.core.schemas import Turn
from bot.core.text import tokenize
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
from bot.knowledge.rewrite import heuristic_rewrite, looks_dependent, resolve_follow_up


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
    assert looks_dependent("and how long does that take?")
    assert looks_dependent("Spain?")  # an ellipsis: one word of its own
    assert not looks_dependent("How do I change the email address on my account?")
    # short, but a question of its own (the old six-word rule sent it to the history)
    assert not looks_dependent("what's the weather in Paris?")
    assert not looks_dependent("Can I get my refund as Parcelly credit?")


def _article(article_id: str, similarity: float) -> ArticleHit:
    return ArticleHit(article_id, article_id, None, similarity, similarity, 0.0)


class FakeSearch:
    """Retrieval by query prefix (the longest that matches): what each query finds, and which
    queries were searched."""

    def __init__(self, results: dict[str, list[ArticleHit]]) -> None:
        self.results = results
        self.queries: list[str] = []

    def __call__(self, query: str) -> list[ArticleHit]:
        self.queries.append(query)
        keys = [key for key in self.results if query.lower().startswith(key)]
        return self.results[max(keys, key=len)] if keys else []


PLUS = [Turn(role="user", content="How do I cancel Parcelly Plus?")]
RETURNS = [Turn(role="user", content="How do I return an item?")]
SCORE = article_score
THRESHOLD = 0.6  # the answer threshold the verdicts below are judged at


def test_a_confident_standalone_question_keeps_its_own_articles() -> None:
    search = FakeSearch(
        {
            "can i get my refund": [_article("billing/refunds", 0.8), _article("plus/cancel", 0.4)],
            # with the Plus question added, the cancellation article comes first
            "can i get my refund as parcelly credit?\nhow do i cancel": [
                _article("plus/cancel", 0.85),
                _article("billing/refunds", 0.7),
            ],
        }
    )
    found = resolve_follow_up("Can I get my refund as Parcelly credit?", PLUS, search, SCORE)
    assert (found.why, found.used_history) == ("standalone", False)
    assert found.hits[0].article_id == "billing/refunds"
    assert found.query == "Can I get my refund as Parcelly credit?"


def test_history_that_confirms_the_best_article_does_not_bring_in_the_earlier_topic() -> None:
    """Seen in a chat: "How do I reset my password?" after a refunds question was searched with
    the refunds question added, and the refunds article came back as a choice next to the
    password article the question finds alone."""
    search = FakeSearch(
        {
            "how do i reset": [
                _article("account/reset-password", 0.9),
                _article("account/2fa", 0.4),
            ],
            "how do i reset my password?\nhow long do refunds": [
                _article("account/reset-password", 0.8),
                _article("billing/refunds", 0.78),
            ],
        }
    )
    history = [Turn(role="user", content="How long do refunds take?")]
    found = resolve_follow_up("How do I reset my password?", history, search, SCORE)
    assert (found.why, found.used_history) == ("standalone", False)
    assert [hit.article_id for hit in found.hits] == ["account/reset-password", "account/2fa"]


def test_history_never_rescues_an_off_topic_question() -> None:
    search = FakeSearch({"what's the weather": [_article("contact/contact-us", 0.25)]})
    found = resolve_follow_up("what's the weather in Paris?", RETURNS, search, SCORE)
    assert (found.why, found.query) == ("off_topic", "what's the weather in Paris?")
    assert decide(found.query, found.hits, THRESHOLD).reason == "no_knowledge"


def test_a_dependent_question_is_searched_with_the_conversation() -> None:
    search = FakeSearch(
        {
            "and how long": [_article("account/sign-in", 0.45)],
        }
    )
    search.results["and how long does that take?\nhow do i return"] = [
        _article("returns/return-policy", 0.8)
    ]
    found = resolve_follow_up("and how long does that take?", RETURNS, search, SCORE)
    assert found.why == "dependent" and found.used_history
    assert "return an item" in found.query
    assert found.hits[0].article_id == "returns/return-policy"


def test_history_breaks_a_near_tie_among_the_questions_own_articles_only() -> None:
    alone = [_article("plus/plans", 0.52), _article("shipping/options", 0.50)]
    search = FakeSearch({})
    search.results["which plan covers international parcels?\nhow do i cancel"] = [
        _article("plus/cancel", 0.75)
    ]
    search.results["which plan"] = alone
    # the conversation's article is not among the question's own candidates: not taken
    found = resolve_follow_up("Which plan covers international parcels?", PLUS, search, SCORE)
    assert found.why == "standalone" and found.hits == alone
    # it is, and within the margin of the question's best: history decides
    search.results["which plan covers international parcels?\nhow do i cancel"] = [
        _article("shipping/options", 0.7)
    ]
    found = resolve_follow_up("Which plan covers international parcels?", PLUS, search, SCORE)
    assert found.why == "ambiguous" and found.hits[0].article_id == "shipping/options"


def test_without_history_there_is_one_search() -> None:
    search = FakeSearch({"how do i": [_article("a", 0.5)]})
    found = resolve_follow_up("How do I reset my password?", [], search, SCORE)
    assert found.why == "no_history" and search.queries == ["How do I reset my password?"]


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
