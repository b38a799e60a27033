"""When a question asks what an article is about: it only restates the article's title."""

from __future__ import annotations

import pytest

from bot.knowledge.answerers import restates_title


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("Which payment methods do you accept?", "Payment methods we accept"),
        ("How can I track my order?", "Tracking your order"),
        ("how do i reset my password", "Resetting your password"),
        ("return policy", "Parcelly's return policy"),
    ],
)
def test_a_question_made_of_the_title_s_words_restates_it(question: str, title: str) -> None:
    assert restates_title(question, title)


@pytest.mark.parametrize(
    ("question", "title"),
    [
        # One word more than the title says is a detail: the best passage answers it.
        ("What is your return policy if I change my mind?", "Parcelly's return policy"),
        ("Do you accept cash on delivery?", "Payment methods we accept"),
        ("How do I return a pan?", "Starting a return"),
        # Short words do not match by their start ("or" is not "order").
        ("pay", "Payment methods we accept"),
        # Nothing asked, or no title: never.
        ("?", "Payment methods we accept"),
        ("How can I track my order?", ""),
    ],
)
def test_a_question_with_its_own_words_does_not(question: str, title: str) -> None:
    assert not restates_title(question, title)
