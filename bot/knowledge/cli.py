"""``supportbot ask`` and ``supportbot eval``: thin commands over ``bot.knowledge.answerers`` and
``bot.knowledge.evaluation``."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from bot.core.settings import Settings, get_settings

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

    from bot.knowledge.answerers import ExtractiveAnswerer, LLMAnswerer
    from ingest.embedder import Embedder


def _open_answerer(
    settings: Settings,
) -> tuple[ExtractiveAnswerer | LLMAnswerer, Collection, Embedder]:
    from bot.knowledge.answerers import build_answerer
    from ingest.embedder import get_embedder
    from ingest.store import open_client, open_collection

    embedder = get_embedder(settings.embedding_model, settings.embedding_batch_size)
    collection = open_collection(open_client(settings), settings.collection, embedder)
    return build_answerer(settings, collection, embedder), collection, embedder


def ask_command(
    question: str = typer.Argument(..., help="The customer's question."),
    as_json: bool = typer.Option(False, "--json", help="Print the /api/ask response body."),
) -> None:
    """Answer one question from the indexed articles, as the chat would."""
    from rich.console import Console
    from rich.markdown import Markdown

    from bot.core.schemas import AnswerResult

    settings = get_settings()
    question = question.strip()
    if not question:
        raise typer.BadParameter("the question is empty", param_hint="QUESTION")
    if len(question) > settings.max_question_chars:
        raise typer.BadParameter(
            f"the question is {len(question)} characters; the limit is "
            f"{settings.max_question_chars}",
            param_hint="QUESTION",
        )
    answerer, collection, _ = _open_answerer(settings)
    console = Console()
    if collection.count() == 0 and not as_json:
        console.print("[yellow]The knowledge base is empty: run `supportbot ingest` first.[/]")

    async def run() -> AnswerResult:
        result: AnswerResult | None = None
        async for item in answerer.stream(question, []):
            if isinstance(item, AnswerResult):
                result = item
        assert result is not None
        return result

    result = asyncio.run(run())
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
        return
    console.print(Markdown(result.answer))
    console.print()
    if result.escalate:
        console.print(f"[bold yellow]escalate[/] reason={result.reason}", end=" ")
    console.print(f"[dim]confidence {result.confidence:.2f}[/]")
    for source in result.sources:
        console.print(
            f"[dim]  {source.score:.2f}  {source.title}  {source.url or source.article_id}"
        )


def eval_command(
    questions_file: Path = typer.Argument(..., help="Labelled questions, JSON Lines."),
    kb: Path | None = typer.Option(
        None, "--kb", help="Evaluate against this articles folder (indexed into a temp store)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the JSON report here."),
    threshold: float | None = typer.Option(
        None, min=0.0, max=1.0, help="Answer threshold (default: SUPPORTBOT_ANSWER_THRESHOLD)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report instead."),
    min_recall5: float | None = typer.Option(
        None, help="Exit 1 when recall@5 falls below this (a regression gate)."
    ),
    max_wrong_rate: float | None = typer.Option(
        None, help="Exit 1 when the wrong-answer rate exceeds this (a regression gate)."
    ),
    min_resolved: float | None = typer.Option(
        None,
        help="Exit 1 when the share of answerable questions answered right or resolved with "
        "one choice falls below this (a gate against a bot that hands everything over).",
    ),
    max_choices: int | None = typer.Option(
        None,
        min=0,
        max=3,
        help="Offer up to this many articles as choices when they are close (default: "
        "SUPPORTBOT_SUGGEST_MAX_CHOICES; 0: never, to compare).",
    ),
) -> None:
    """Retrieval, answer, choice and escalation quality over labelled questions, with the
    threshold curve and a recommended threshold."""
    from rich.console import Console

    from bot.knowledge.answerability import suggestion_rule
    from bot.knowledge.evaluation import (
        QuestionsFileError,
        build_report,
        load_questions,
        render_report,
        run_retrieval,
        write_report,
    )
    from bot.knowledge.retrieval import Retriever

    console = Console(stderr=as_json)
    try:
        questions = load_questions(questions_file)
    except QuestionsFileError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="supportbot-eval-") as tmp:
        if kb is not None:
            from ingest.pipeline import index_paths

            if not kb.exists():
                console.print(f"[red]error:[/] {kb}: no such file or directory")
                raise typer.Exit(2)
            settings = settings.model_copy(
                update={"data_dir": Path(tmp), "chroma_url": None, "kb_path": kb}
            )
            report_ingest = index_paths([kb], settings)
            console.print(f"indexed {kb}: {report_ingest.as_dict()}", style="dim")
        _, collection, embedder = _open_answerer(settings)
        retriever = Retriever(collection, embedder, settings)
        outcomes = run_retrieval(retriever, questions)
    used = threshold if threshold is not None else settings.answer_threshold
    rule = suggestion_rule(settings)
    if max_choices is not None:
        rule = replace(rule, max_choices=max_choices)
    report = build_report(questions, outcomes, used, rule)
    if out is not None:
        write_report(report, out)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for renderable in render_report(report):
            console.print(renderable)
        if out is not None:
            console.print(f"report written to {out}")
    failed = []
    recall5 = report["retrieval"].get("recall@5")
    if min_recall5 is not None and recall5 is not None and recall5 < min_recall5:
        failed.append(f"recall@5 {recall5:.3f} < {min_recall5}")
    wrong = report["at_threshold"]["wrong_answer_rate"]
    if max_wrong_rate is not None and wrong > max_wrong_rate:
        failed.append(f"wrong-answer rate {wrong:.3f} > {max_wrong_rate}")
    resolved = report["at_threshold"].get("answerable_resolved")
    if min_resolved is not None and resolved is not None and resolved < min_resolved:
        failed.append(f"answerable resolved {resolved:.3f} < {min_resolved}")
    if failed:
        Console(stderr=True).print("[red]quality gate failed:[/] " + "; ".join(failed))
        raise typer.Exit(1)
