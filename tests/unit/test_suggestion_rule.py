"""The "which of these?" rule, how the evaluation counts it, and the hand-over it leads to.

No embedder here: the rule works on the scores retrieval produced, so each case states them.
"""

from __future__ import annotations

import pytest

from bot.core.schemas import AnswerResult, Source
from bot.core.settings import Settings
from bot.handoff import policy
from bot.handoff.triggers import Signals
from bot.knowledge.answerability import (
    NO_SUGGESTIONS,
    Candidate,
    SuggestionRule,
    choices,
    judge,
    suggestion_rule,
)
from bot.knowledge.evaluation import LabelledQuestion, Outcome, operating_point, outcome_shares

RULE = SuggestionRule(max_choices=3, margin=0.06, slack=0.08)
T = 0.6


def top(*pairs: tuple[float, float]) -> list[Candidate]:
    """Candidates from (answerability score, fused retrieval score), in rank order."""
    return [Candidate(score, fused) for score, fused in pairs]


@pytest.mark.parametrize(
    ("articles", "offered"),
    [
        # near-tie above the threshold: both offered instead of a coin toss
        (top((0.80, 1.30), (0.78, 1.27)), 2),
        # a third one close as well
        (top((0.80, 1.30), (0.78, 1.27), (0.70, 1.25)), 3),
        # just below the threshold but above its slack: choices instead of a hand-over
        (top((0.55, 1.10), (0.54, 1.08)), 2),
        # retrieval tells them apart: answer (or escalate) as before
        (top((0.80, 1.30), (0.78, 1.20)), 0),
        # the runner-up is close in retrieval but too weak to offer
        (top((0.80, 1.30), (0.50, 1.29)), 0),
        # both too weak: nothing worth offering, a person takes it
        (top((0.45, 1.00), (0.44, 0.99)), 0),
        # only a run from the top counts: the third is not offered past a weak second
        (top((0.80, 1.30), (0.40, 1.29), (0.79, 1.28)), 0),
        (top((0.80, 1.30), (0.79, 1.29), (0.40, 1.28)), 2),
        # one article is no choice
        (top((0.80, 1.30)), 0),
        ([], 0),
    ],
)
def test_choices_offers_close_plausible_articles(articles: list[Candidate], offered: int) -> None:
    assert choices(articles, T, RULE) == offered


def test_max_choices_caps_and_zero_turns_the_rule_off() -> None:
    close = top((0.80, 1.30), (0.79, 1.29), (0.78, 1.28))
    assert choices(close, T, SuggestionRule(2, 0.06, 0.08)) == 2
    assert choices(close, T, SuggestionRule(0, 0.06, 0.08)) == 0
    assert choices(close, T, NO_SUGGESTIONS) == 0


def test_the_default_settings_give_the_rule_chosen_from_data() -> None:
    assert suggestion_rule(Settings(_env_file=None)) == RULE  # type: ignore[call-arg]


def test_judge_offers_choices_but_a_request_for_a_person_comes_first() -> None:
    split = top((0.80, 1.30), (0.78, 1.27))
    verdict = judge(0.80, False, T, split, RULE)
    assert (verdict.outcome, verdict.escalate, verdict.reason, verdict.suggest) == (
        "suggest",
        False,
        None,
        2,
    )
    assert judge(0.80, True, T, split, RULE).reason == "customer_request"
    assert judge(0.80, False, T, split).outcome == "answer"  # without the rule: as before
    weak = top((0.30, 0.80), (0.29, 0.79))
    assert judge(0.30, False, T, weak, RULE).outcome == "escalate"


def test_evaluation_counts_one_choice_apart_from_answers_and_escalations() -> None:
    questions = [
        LabelledQuestion(question="split, expected among the offered", expected_article_ids=["b"]),
        LabelledQuestion(question="split, expected not offered", expected_article_ids=["z"]),
        LabelledQuestion(question="clear and right", expected_article_ids=["a"]),
        LabelledQuestion(question="clear and wrong", expected_article_ids=["z"]),
        LabelledQuestion(question="out of scope, offered", answerable=False),
        LabelledQuestion(question="out of scope, escalated", answerable=False),
    ]
    split = top((0.80, 1.30), (0.78, 1.27))
    clear = top((0.90, 1.50), (0.40, 1.00))
    outcomes = [
        Outcome(["a", "b", "c"], 0.80, top=split),
        Outcome(["a", "b", "c"], 0.80, top=split),
        Outcome(["a", "b"], 0.90, top=clear),
        Outcome(["a", "b"], 0.90, top=clear),
        Outcome(["a", "b"], 0.55, top=top((0.55, 1.10), (0.54, 1.08))),
        Outcome(["a", "b"], 0.20, top=top((0.20, 0.60), (0.19, 0.59))),
    ]
    point = operating_point(questions, outcomes, T, RULE)
    assert point.counts == {
        "questions": 6,
        "answered": 2,
        "correct": 1,
        "wrong": 1,
        "escalated": 1,
        "escalated_unanswerable": 1,
        "one_choice": 1,
        "choices_none_right": 2,
    }
    assert point.one_choice_rate == round(1 / 6, 4) and point.choice_rate == 0.5
    assert point.answerable_resolved == 0.5  # 1 answered right + 1 with one choice, of 4
    shares = outcome_shares(
        {"counts": point.counts}  # the JSON report's shape
    )
    assert shares == {
        "answered_right": round(1 / 6, 4),
        "one_choice": round(1 / 6, 4),
        "wrong": round(1 / 6, 4),
        "escalated": round(1 / 6, 4),
        "choices_none_right": round(2 / 6, 4),
    }
    without = operating_point(questions, outcomes, T)
    assert without.counts["one_choice"] == 0 and without.counts["wrong"] == 3


def test_none_of_these_is_a_hand_over_for_no_match_decided_by_the_policy() -> None:
    decision = policy.decide(verdict=policy.NO_MATCH)
    assert (decision.escalate, decision.reason) == (True, "no_match")
    # What the customer says still comes first.
    assert policy.decide(Signals(person_request="words"), policy.NO_MATCH).reason == (
        "customer_request"
    )


def test_a_reply_with_suggestions_is_not_an_escalation() -> None:
    offered = [
        Source(article_id="a", title="A", score=0.8),
        Source(article_id="b", title="B", score=0.78),
    ]
    reply = AnswerResult(answer="Which one?", escalate=False, confidence=0.8, suggestions=offered)
    assert policy.decide(verdict=reply) == policy.ANSWER
