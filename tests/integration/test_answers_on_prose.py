"""Questions a help center's prose answers are answered, on the shipped default threshold.

A new user saw the returns article escalate the questions it opens with: a question is nearer
to another way of asking it than to the prose that answers it, and the threshold had been
calibrated on FAQ entries made of example questions (``PROSE_OFFSET`` in
``bot.knowledge.answerability``). Off-topic questions must still be handed over.
"""

from __future__ import annotations

import pytest

from bot.core.schemas import AnswerResult
from bot.knowledge.answerers import ExtractiveAnswerer


async def answer(answerer: ExtractiveAnswerer, question: str) -> AnswerResult:
    result: AnswerResult | None = None
    async for item in answerer.stream(question, []):
        if isinstance(item, AnswerResult):
            result = item
    assert result is not None
    return result


async def test_changed_my_mind_return_is_answered_with_the_30_days(
    demo_answerer: ExtractiveAnswerer,
) -> None:
    result = await answer(demo_answerer, "Can I return something if I just changed my mind?")
    assert not result.escalate, result.confidence
    assert not result.suggestions
    assert [s.article_id for s in result.sources] == ["returns/return-policy"]
    assert "30 days" in result.answer


async def test_return_policy_if_i_change_my_mind_is_answered_with_the_30_days(
    demo_answerer: ExtractiveAnswerer,
) -> None:
    result = await answer(demo_answerer, "What is your return policy if I change my mind?")
    assert not result.escalate, result.confidence
    assert [s.article_id for s in result.sources] == ["returns/return-policy"]
    assert "30 days" in result.answer


async def test_how_do_i_return_a_pan_is_answered(demo_answerer: ExtractiveAnswerer) -> None:
    result = await answer(demo_answerer, "How do I return a pan?")
    assert not result.escalate, result.confidence
    answered_from = [s.article_id for s in result.sources]
    offered = [s.article_id for s in result.suggestions or []]
    assert set(answered_from + offered) & {"returns/return-policy", "returns/start-a-return"}


@pytest.mark.parametrize(
    "question",
    [
        "what's the weather in Paris?",
        "can you recommend a good lasagna recipe",
        "who won the champions league last year",
        "do you sell cars",
    ],
)
async def test_off_topic_questions_are_still_handed_over(
    demo_answerer: ExtractiveAnswerer, question: str
) -> None:
    result = await answer(demo_answerer, question)
    assert result.escalate, (question, result.confidence)
