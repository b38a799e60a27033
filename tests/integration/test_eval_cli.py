"""``supportbot eval`` on a tiny labelled file: the figures match a hand count."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.core.settings import get_settings
from tests.helpers.kb import ARTICLES, to_markdown

RETURNS, SHIPPING = "returns/return-policy", "shipping/delivery-times"
QUESTIONS = [
    # answerable, the right article first
    ("How long do I have to drop off my return?", [RETURNS], True),
    ("How much does express delivery cost?", [SHIPPING], True),
    ("Do gift cards expire?", ["billing/gift-cards"], True),
    # two acceptable articles; the second is the one retrieved
    ("I forgot my password", [RETURNS, "account/reset-password"], True),
    # labelled with an article the KB does not have: never retrieved
    ("How do I change the email address on my account?", ["account/change-email"], True),
    # should be escalated
    ("What is the boiling point of mercury?", [], False),
    ("Can I talk to a human please?", [], False),
]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    kb = tmp_path / "kb"
    kb.mkdir()
    for article in ARTICLES:
        (kb / f"{article.article_id.replace('/', '-')}.md").write_text(to_markdown(article))
    lines = [
        json.dumps({"question": q, "expected_article_ids": ids, "answerable": ok})
        for q, ids, ok in QUESTIONS
    ]
    (tmp_path / "questions.jsonl").write_text("\n".join(lines) + "\n\n")
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path / "unused-data"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_eval_figures_match_a_hand_count(workspace: Path) -> None:
    out = workspace / "report.json"
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(workspace / "questions.jsonl"),
            "--kb",
            str(workspace / "kb"),
            "--threshold",
            "0",
            "--max-choices",  # answers and escalations only: choices are counted in
            "0",  # tests/integration/test_suggestions.py
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    # Retrieval over the 5 questions that name articles: 4 found first, 1 never found.
    assert report["retrieval"] == {
        "questions_with_expected_articles": 5,
        "recall@1": 0.8,
        "recall@5": 0.8,
        "recall@10": 0.8,
        "mrr": 0.8,
    }
    # Threshold 0: everything is answered except the explicit request for a person.
    # Answered 6: correct 4 (Q1-Q4), wrong 2 (change-email, mercury). Escalated 1 (the human
    # request, rightly): precision 1/1; 1 of the 2 unanswerable escalated: recall 1/2.
    point = report["at_threshold"]
    assert point["threshold"] == 0
    assert point["answer_rate"] == round(6 / 7, 4)
    assert point["correct_answer_rate"] == round(4 / 7, 4)
    assert point["wrong_answer_rate"] == round(2 / 7, 4)
    assert point["escalation_precision"] == 1.0
    assert point["escalation_recall"] == 0.5
    assert point["answerable_answered_correctly"] == 0.8
    assert point["counts"] == {
        "questions": 7,
        "answered": 6,
        "correct": 4,
        "wrong": 2,
        "escalated": 1,
        "escalated_unanswerable": 1,
        "one_choice": 0,
        "choices_none_right": 0,
    }
    assert len(report["curve"]) == 21
    assert report["recommended"]["balanced"] >= point["balanced"]
    assert "recommended threshold" in result.output
    assert "recall@5" in result.output


def test_quality_gate_fails_the_run(workspace: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(workspace / "questions.jsonl"),
            "--kb",
            str(workspace / "kb"),
            "--json",
            "--min-recall5",
            "0.9",
        ],
    )
    assert result.exit_code == 1
    assert "recall@5 0.800 < 0.9" in result.output


def test_bad_questions_file_names_the_line(workspace: Path) -> None:
    bad = workspace / "bad.jsonl"
    bad.write_text('{"question": "ok", "expected_article_ids": []}\n{"question": 5}\n')
    result = CliRunner().invoke(app, ["eval", str(bad)])
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output and "question" in result.output
