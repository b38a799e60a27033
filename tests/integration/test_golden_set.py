"""The demo knowledge base's golden questions (tests/golden/demo_kb.jsonl) and their CI gate.

The file is ours: questions written the way customers write (typos, no question mark, several
questions in one message, paraphrases, follow-ups, topic switches, off-topic, requests for a
person), labelled with the articles of kb_articles/ that answer them. The gate runs
``supportbot eval`` on it exactly as a team would in CI; its bounds sit a little under what the
product reaches today (docs/evaluation.md, "The demo golden set"), so a change that makes answers
worse fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.settings import get_settings
from bot.knowledge.evaluation import load_questions
from ingest.embedder import Embedder
from tests.conftest import KB_DIR, REPO_ROOT

GOLDEN = REPO_ROOT / "tests" / "golden" / "demo_kb.jsonl"
MIN_RECALL5 = 0.95
"""recall@5 was 1.000 when the set was written."""
MAX_WRONG_RATE = 0.03
"""The wrong-answer rate was 0.000 when the set was written (0.020 without the suggestion rule):
two wrong answers in 99 still pass, a third fails."""
MIN_RESOLVED = 0.90
"""Share of answerable questions answered right or resolved with one choice: 0.943 when the
answer scale for prose came in (0.807 before: 17 answerable questions were handed over). The
wrong-answer bound alone would pass a bot that hands everything over."""

ISSUE_CASES = {
    "Can I return something if I just changed my mind?": ["returns/return-policy"],
    "How do I return a pan?": ["returns/start-a-return", "returns/return-policy"],
    "What is your return policy if I change my mind?": ["returns/return-policy"],
    # the refunds article, or the credit section of the gift-card article: not Plus cancellation
    "Can I get my refund as Parcelly credit?": [
        "billing/refunds",
        "billing/promo-codes-gift-cards",
    ],
    "what's the weather in Paris?": [],
    "my parcel never arrived": ["orders-shipping/missing-or-damaged-package"],
    "I forgot my password, how do I reset it?": ["account/reset-password"],
    "How long does a refund take if I paid with PayPal?": ["billing/refunds"],
}


def article_ids() -> set[str]:
    return {str(path.relative_to(KB_DIR).with_suffix("")) for path in KB_DIR.rglob("*.md")}


def test_the_golden_set_covers_the_demo_kb_and_the_issue_cases() -> None:
    questions = load_questions(GOLDEN)
    assert len(questions) >= 80
    expected = {a for q in questions for a in q.expected_article_ids}
    assert expected == article_ids(), "every article is asked about, and only real ones"
    by_text = {q.question: q for q in questions}
    for text, ids in ISSUE_CASES.items():
        assert by_text[text].expected_article_ids == ids, text
        assert by_text[text].answerable is bool(ids)
    # The Parcelly-credit question comes after one about cancelling Plus, and the weather in
    # Paris after a returns question: the history is what makes them hard.
    assert "Plus" in by_text["Can I get my refund as Parcelly credit?"].history[0].content
    assert "return" in by_text["what's the weather in Paris?"].history[0].content
    assert sum(1 for q in questions if q.history) >= 5
    assert sum(1 for q in questions if not q.answerable) >= 8
    for q in questions:
        assert q.answerable is bool(q.expected_article_ids), q.question


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path / "unused-data"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_golden_set_quality_gate(isolated: Path, embedder: Embedder) -> None:
    """``supportbot eval tests/golden/demo_kb.jsonl --kb kb_articles`` with the CI bounds (the
    session's embedder is the one the command uses: it is loaded once per process)."""
    out = isolated / "golden.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(GOLDEN),
            "--kb",
            str(KB_DIR),
            "--min-recall5",
            str(MIN_RECALL5),
            "--max-wrong-rate",
            str(MAX_WRONG_RATE),
            "--min-resolved",
            str(MIN_RESOLVED),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["questions"] == len(load_questions(GOLDEN))
    assert report["retrieval"]["recall@5"] >= MIN_RECALL5
    assert report["at_threshold"]["wrong_answer_rate"] <= MAX_WRONG_RATE
    assert report["at_threshold"]["answerable_resolved"] >= MIN_RESOLVED
    # Offering choices must not cost wrong answers on the demo KB.
    without = report["without_choices"]["wrong_answer_rate"]
    assert report["at_threshold"]["wrong_answer_rate"] <= without
