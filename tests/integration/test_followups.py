"""Follow-ups keep their topic, and drop it when the customer changes the subject.

On the demo knowledge base (kb_articles, the Parcelly help center; the sections these
conversations touch), with the real embedder and
the default extractive answerer, the conversations that went wrong:

- after a question about cancelling Plus, "Can I get my refund as Parcelly credit?" was answered
  with the Plus cancellation steps (asked alone it was answered from the refunds articles);
- after a returns question, "what's the weather in Paris?" was offered the return policy;

and the ones that must keep working: "and how long does that take?" and "what about to Spain?"
take their topic from the previous question.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.schemas import AnswerResult, Turn
from bot.core.settings import Settings
from bot.knowledge.answerers import ExtractiveAnswerer, build_answerer
from ingest.embedder import Embedder
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SECTIONS = ("billing", "contact", "orders-shipping", "plus", "returns")


@pytest.fixture(scope="module")
def answerer(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> ExtractiveAnswerer:
    from ingest.pipeline import index_paths
    from ingest.store import open_client, open_collection

    # The sections these conversations move between (19 of the 34 articles: indexing all of
    # them would triple the test's time for no other question).
    root = tmp_path_factory.mktemp("demo")
    kb = root / "kb"
    for section in SECTIONS:
        for article in sorted((REPO_ROOT / "kb_articles" / section).glob("*.md")):
            target = kb / section / article.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(article.read_text(encoding="utf-8"), encoding="utf-8")
    data: Path = root / "data"
    settings = Settings(data_dir=data, kb_path=kb, _env_file=None)  # type: ignore[call-arg]
    report = index_paths([kb], settings, embedder)
    assert not report.failed, report.failed
    collection = open_collection(open_client(settings), settings.collection, embedder)
    built = build_answerer(settings, collection, embedder)
    assert isinstance(built, ExtractiveAnswerer)
    return built


def asked(answerer: ExtractiveAnswerer, question: str, *earlier: str) -> AnswerResult:
    history = [Turn(role="user", content=text) for text in earlier]
    return answerer.answer_sync(question, history)


def cited(result: AnswerResult) -> list[str]:
    return [source.article_id for source in result.sources]


def test_a_new_standalone_question_is_answered_as_if_asked_alone(
    answerer: ExtractiveAnswerer,
) -> None:
    question = "Can I get my refund as Parcelly credit?"
    alone = asked(answerer, question)
    after_plus = asked(answerer, question, "How do I cancel my Parcelly Plus membership?")
    assert not after_plus.escalate
    assert "plus/cancel-membership" not in cited(after_plus)
    assert cited(after_plus) == cited(alone)
    assert "Parcelly credit" in after_plus.answer


def test_an_off_topic_question_is_not_rescued_by_the_previous_topic(
    answerer: ExtractiveAnswerer,
) -> None:
    result = asked(answerer, "what's the weather in Paris?", "How do I return an item?")
    assert result.escalate and result.reason == "no_knowledge"
    assert result.sources == []  # no return policy "in the meantime"
    assert "return" not in result.answer.lower()


@pytest.mark.parametrize(
    ("question", "earlier", "topic"),
    [
        ("and how long does that take?", "How do I return an item?", "returns/"),
        ("what about to Spain?", "How much is express shipping?", "orders-shipping/"),
    ],
)
def test_a_follow_up_that_depends_on_the_conversation_keeps_its_topic(
    answerer: ExtractiveAnswerer, question: str, earlier: str, topic: str
) -> None:
    alone = asked(answerer, question)
    result = asked(answerer, question, earlier)
    assert not result.escalate, result
    assert cited(result)[0].startswith(topic)
    assert alone.escalate or not cited(alone)[0].startswith(topic)  # the history did it
