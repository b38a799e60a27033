"""``supportbot eval``: retrieval and escalation quality over labelled questions.

This is the product's regression gate: a team keeps golden questions (format in
docs/evaluation.md) and runs this after every knowledge-base change. Definitions, all at article
level:

- recall@k: share of questions with expected articles that have one of them in the top k;
  MRR: mean of 1/rank of the first expected article (0 when absent from the list).
- answered: the bot would answer (score >= threshold, no explicit request for a person, no
  choices offered). An answer is *correct* when the article it is drawn from (the first source)
  is expected; otherwise it is a *wrong answer*. Unanswerable questions answered are wrong
  answers.
- offered choices ("which of these?", the suggestion rule): *resolved with one choice* when an
  expected article is among the offered ones (an answerable question); otherwise *choices, none
  right*: the customer answers "none of these" and a person takes over.
- answer rate, wrong-answer rate, one-choice rate and choice rate are shares of all questions.
- escalation precision: of the escalated questions, the share that should be escalated
  (``answerable: false``); escalation recall: of those, the share that was escalated (both count
  direct escalations; questions offered choices are counted apart).

The recommended threshold maximises the balanced score "answerable questions resolved" +
"unanswerable questions escalated" (each as a share of its own group) when the file has both
kinds; with only answerable questions it maximises resolved minus wrong answers. A resolution
with one choice counts :data:`CHOICE_CREDIT` of a direct correct answer (the customer had to pick),
and an unanswerable question offered choices :data:`DETOUR_CREDIT` of an escalation (it reaches a
person one click later).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from bot.core.schemas import Turn
from bot.knowledge.answerability import (
    NO_SUGGESTIONS,
    Candidate,
    SuggestionRule,
    article_score,
    candidate,
    judge,
)
from bot.knowledge.intents import asks_for_human
from bot.knowledge.retrieval import ArticleHit, Retriever
from bot.knowledge.rewrite import resolve_follow_up

KS = (1, 5, 10)
CURVE_STEP = 0.05
SCORED_ARTICLES = 3
"""Articles whose answerability score is kept per question: the most the rule can offer."""
CHOICE_CREDIT = 0.75
"""A question resolved with one choice, as a share of a direct correct answer (one click)."""
DETOUR_CREDIT = 0.5
"""An unanswerable question offered choices, as a share of a direct escalation: the customer
reads articles that do not fit and reaches a person one click later."""


class LabelledQuestion(BaseModel):
    """One line of a QUESTIONS.jsonl file."""

    question: str = Field(min_length=1)
    history: list[Turn] = Field(default_factory=list)
    expected_article_ids: list[str] = Field(default_factory=list)
    answerable: bool = True


class QuestionsFileError(ValueError):
    """A labelled-question file that cannot be read; the message names the line."""


def load_questions(path: Path) -> list[LabelledQuestion]:
    """Parse a JSON Lines file of labelled questions; blank lines are ignored."""
    questions: list[LabelledQuestion] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise QuestionsFileError(f"{path}: {exc.strerror or exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            questions.append(LabelledQuestion.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "line"
            raise QuestionsFileError(f"{path}:{number}: {where}: {first['msg']}") from exc
    if not questions:
        raise QuestionsFileError(f"{path}: no questions in the file")
    return questions


@dataclass
class Outcome:
    """What retrieval returned for one question: ranked article ids, the answer score and the
    top articles' scores (rank order), which the suggestion rule compares."""

    ranked: list[str]
    confidence: float
    customer_request: bool = False
    top: list[Candidate] = field(default_factory=list)


def run_retrieval(
    retriever: Retriever,
    questions: Sequence[LabelledQuestion],
    *,
    mode: str = "hybrid",
    use_history: bool = True,
    rewrite: Callable[[str, Sequence[Turn]], str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Retrieve for every question with the same follow-up handling and score as the answerer
    (:func:`bot.knowledge.rewrite.resolve_follow_up`), or with ``rewrite`` when one is given."""
    outcomes: list[Outcome] = []

    def search(text: str) -> list[ArticleHit]:
        return retriever.search(text, k_articles=max(KS), mode=mode)

    for n, item in enumerate(questions, start=1):
        if not use_history:
            hits = search(item.question)
        elif rewrite is not None:
            hits = search(rewrite(item.question, item.history))
        else:
            hits = resolve_follow_up(item.question, item.history, search, article_score).hits
        top = [candidate(hit) for hit in hits[:SCORED_ARTICLES]]
        outcomes.append(
            Outcome(
                ranked=[h.article_id for h in hits],
                confidence=top[0].score if top else 0.0,
                customer_request=asks_for_human(item.question),
                top=top,
            )
        )
        if progress:
            progress(n)
    return outcomes


def retrieval_metrics(
    questions: Sequence[LabelledQuestion], outcomes: Sequence[Outcome]
) -> dict[str, float | int]:
    """recall@1/5/10 and MRR over the questions that name expected articles."""
    judged = [(q, o) for q, o in zip(questions, outcomes, strict=True) if q.expected_article_ids]
    result: dict[str, float | int] = {"questions_with_expected_articles": len(judged)}
    if not judged:
        return result
    for k in KS:
        hits = sum(1 for q, o in judged if set(o.ranked[:k]) & set(q.expected_article_ids))
        result[f"recall@{k}"] = round(hits / len(judged), 4)
    reciprocal = 0.0
    for q, o in judged:
        rank = next((i for i, a in enumerate(o.ranked, 1) if a in q.expected_article_ids), None)
        reciprocal += 1.0 / rank if rank else 0.0
    result["mrr"] = round(reciprocal / len(judged), 4)
    return result


@dataclass
class OperatingPoint:
    """Answer/choice/escalation figures at one threshold."""

    threshold: float
    answer_rate: float
    correct_answer_rate: float
    wrong_answer_rate: float
    escalation_precision: float | None
    escalation_recall: float | None
    answerable_answered_correctly: float | None
    balanced: float
    counts: dict[str, int] = field(default_factory=dict)
    one_choice_rate: float = 0.0
    choice_rate: float = 0.0
    answerable_resolved: float | None = None  # answered correctly or with one choice


def operating_point(
    questions: Sequence[LabelledQuestion],
    outcomes: Sequence[Outcome],
    threshold: float,
    rule: SuggestionRule = NO_SUGGESTIONS,
) -> OperatingPoint:
    answered = correct = wrong = escalated = escalated_right = 0
    one_choice = choices_missed = choices_unanswerable = 0
    answerable = sum(1 for q in questions if q.answerable)
    unanswerable = len(questions) - answerable
    answerable_correct = 0
    for q, o in zip(questions, outcomes, strict=True):
        confidence = o.confidence if o.ranked else None
        verdict = judge(confidence, o.customer_request, threshold, o.top, rule)
        if verdict.escalate:
            escalated += 1
            escalated_right += 0 if q.answerable else 1
            continue
        if verdict.suggest:
            offered = set(o.ranked[: verdict.suggest])
            if q.answerable and (
                not q.expected_article_ids or offered & set(q.expected_article_ids)
            ):
                one_choice += 1
            else:
                choices_missed += 1
                choices_unanswerable += 0 if q.answerable else 1
            continue
        answered += 1
        is_right = q.answerable and (
            not q.expected_article_ids or o.ranked[0] in q.expected_article_ids
        )
        if is_right:
            correct += 1
            answerable_correct += 1
        else:
            wrong += 1
    n = len(questions)
    in_scope = answerable_correct / answerable if answerable else None
    recall = escalated_right / unanswerable if unanswerable else None
    resolved = (answerable_correct + CHOICE_CREDIT * one_choice) / answerable if answerable else 0
    if in_scope is not None and recall is not None:
        reached = (escalated_right + DETOUR_CREDIT * choices_unanswerable) / unanswerable
        balanced = (resolved + reached) / 2
    else:
        balanced = (correct + CHOICE_CREDIT * one_choice - wrong) / n
    return OperatingPoint(
        threshold=round(threshold, 4),
        answer_rate=round(answered / n, 4),
        correct_answer_rate=round(correct / n, 4),
        wrong_answer_rate=round(wrong / n, 4),
        escalation_precision=round(escalated_right / escalated, 4) if escalated else None,
        escalation_recall=round(recall, 4) if recall is not None else None,
        answerable_answered_correctly=round(in_scope, 4) if in_scope is not None else None,
        balanced=round(balanced, 4),
        counts={
            "questions": n,
            "answered": answered,
            "correct": correct,
            "wrong": wrong,
            "escalated": escalated,
            "escalated_unanswerable": escalated_right,
            "one_choice": one_choice,
            "choices_none_right": choices_missed,
        },
        one_choice_rate=round(one_choice / n, 4),
        choice_rate=round((one_choice + choices_missed) / n, 4),
        answerable_resolved=(
            round((answerable_correct + one_choice) / answerable, 4) if answerable else None
        ),
    )


def threshold_curve(
    questions: Sequence[LabelledQuestion],
    outcomes: Sequence[Outcome],
    thresholds: Iterable[float] | None = None,
    rule: SuggestionRule = NO_SUGGESTIONS,
) -> list[OperatingPoint]:
    grid = thresholds or [round(i * CURVE_STEP, 4) for i in range(int(1 / CURVE_STEP) + 1)]
    return [operating_point(questions, outcomes, t, rule) for t in grid]


def recommend_threshold(
    questions: Sequence[LabelledQuestion],
    outcomes: Sequence[Outcome],
    rule: SuggestionRule = NO_SUGGESTIONS,
) -> OperatingPoint:
    """The best operating point on a fine grid; the middle of a plateau of equal scores, so the
    choice does not sit on the edge of what the data supports."""
    points = threshold_curve(questions, outcomes, [i / 100 for i in range(101)], rule)
    best = max(p.balanced for p in points)
    plateau = [p for p in points if p.balanced == best]
    return plateau[len(plateau) // 2]


def build_report(
    questions: Sequence[LabelledQuestion],
    outcomes: Sequence[Outcome],
    threshold: float,
    rule: SuggestionRule = NO_SUGGESTIONS,
) -> dict[str, Any]:
    """Everything ``supportbot eval`` prints, as JSON-ready data. ``without_choices`` is the
    same threshold with the suggestion rule off, so a run shows what "which of these?" adds."""
    return {
        "questions": len(questions),
        "answerable": sum(1 for q in questions if q.answerable),
        "retrieval": retrieval_metrics(questions, outcomes),
        "suggestion_rule": asdict(rule),
        "at_threshold": asdict(operating_point(questions, outcomes, threshold, rule)),
        "without_choices": asdict(operating_point(questions, outcomes, threshold)),
        "recommended": asdict(recommend_threshold(questions, outcomes, rule)),
        "curve": [asdict(p) for p in threshold_curve(questions, outcomes, rule=rule)],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render_report(report: dict[str, Any]) -> list[Any]:
    """Rich renderables for the terminal: the summary and the threshold curve."""
    from rich.table import Table

    retrieval = report["retrieval"]
    now = report["at_threshold"]
    rec = report["recommended"]
    summary = Table(title=f"supportbot eval: {report['questions']} questions", show_header=False)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for k in KS:
        if f"recall@{k}" in retrieval:
            summary.add_row(f"recall@{k}", f"{retrieval[f'recall@{k}']:.3f}")
    if "mrr" in retrieval:
        summary.add_row("MRR", f"{retrieval['mrr']:.3f}")
    summary.add_row("threshold (settings)", f"{now['threshold']:.2f}")
    summary.add_row("answer rate", _pct(now["answer_rate"]))
    summary.add_row("wrong-answer rate", _pct(now["wrong_answer_rate"]))
    summary.add_row("escalation precision", _pct(now["escalation_precision"]))
    summary.add_row("escalation recall", _pct(now["escalation_recall"]))
    summary.add_row("recommended threshold", f"{rec['threshold']:.2f}")
    outcomes = Table(title="where each question ends (shares of all questions)")
    for name in ("", "answered right", "one choice", "wrong", "escalated", "choices, none right"):
        outcomes.add_column(name, justify="right")
    for label, point in (("with choices", now), ("without", report["without_choices"])):
        outcomes.add_row(label, *_ends(point))
    curve = Table(title="threshold curve")
    for name in (
        "threshold",
        "answered",
        "correct",
        "one choice",
        "wrong",
        "esc. precision",
        "esc. recall",
    ):
        curve.add_column(name, justify="right")
    for p in report["curve"]:
        curve.add_row(
            f"{p['threshold']:.2f}",
            _pct(p["answer_rate"]),
            _pct(p["correct_answer_rate"]),
            _pct(p["one_choice_rate"]),
            _pct(p["wrong_answer_rate"]),
            _pct(p["escalation_precision"]),
            _pct(p["escalation_recall"]),
        )
    return [summary, outcomes, curve]


def outcome_shares(point: dict[str, Any]) -> dict[str, float]:
    """Answered right, resolved with one choice, wrong, escalated (directly) and choices with
    none right, as shares of all questions: the four ends a question can reach, plus the
    detour to a person through "none of these"."""
    counts = point["counts"]
    n = counts["questions"] or 1
    return {
        "answered_right": round(counts["correct"] / n, 4),
        "one_choice": round(counts.get("one_choice", 0) / n, 4),
        "wrong": round(counts["wrong"] / n, 4),
        "escalated": round(counts["escalated"] / n, 4),
        "choices_none_right": round(counts.get("choices_none_right", 0) / n, 4),
    }


def _ends(point: dict[str, Any]) -> list[str]:
    return [_pct(share) for share in outcome_shares(point).values()]
