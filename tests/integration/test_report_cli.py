"""``supportbot report``: the same figures as the API, on the configured database, as tables or
one CSV export; and the command stays light (no torch, Chroma or embedder on import)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.conversations.store import record_csat
from bot.core.db import make_engine, make_session_factory, transaction
from bot.core.migrate import upgrade_database
from bot.core.settings import Settings, get_settings
from tests.unit.test_handoff import T0, Sim

PERIOD = ["--since", "2026-11-23", "--until", "2026-11-23", "--tz", "Europe/Amsterdam"]


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A data directory the command reads (through the environment) with two conversations:
    one deflection (rated 4, effort 6) and one escalation answered by ana after 4 minutes."""
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    settings = get_settings()
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.effective_database_url)
    upgrade_database(engine)
    sessions = make_session_factory(engine)
    sim_settings = Settings(data_dir=settings.data_dir, _env_file=None)
    helped = Sim(sessions, sim_settings, start=T0)
    helped.customer("How do I return a parcel?")
    helped.at(1).feedback(True)
    with transaction(sessions) as session:
        record_csat(session, helped.conversation_id, 4, ces=6, now=T0 + timedelta(minutes=2))
    person = Sim(sessions, sim_settings, start=T0 + timedelta(minutes=5))
    person.customer("-1 talk to a human please")
    person.at(4).agent("reply", "ana@example.com", "Hi, Ana here.")
    engine.dispose()
    try:
        yield {"helped": helped.conversation_id, "person": person.conversation_id}
    finally:
        get_settings.cache_clear()


def run(*args: str) -> tuple[int, str, str]:
    from bot.cli import app

    result = CliRunner().invoke(app, ["report", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_the_report_tables(configured: dict[str, str]) -> None:
    code, out, _ = run(*PERIOD)
    assert code == 0, out
    assert "Report 2026-11-23 .. 2026-11-23" in out and "Europe/Amsterdam" in out
    assert "2 (2 decided, 0 undecided)" in out  # conversations
    assert "50.0% (1)" in out  # confirmed deflection, and escalation: 1 of 2 decided
    assert "customer_request" in out
    assert "4.0 min / 4.0 min (n=1)" in out  # first human response p50 / p90
    assert "4.00 (n=1, response rate 50.0%)" in out  # CSAT
    assert "6.00 (n=1, response rate 50.0%)" in out  # CES
    assert "returns/return-policy" in out and "ana@example.com" in out
    assert "2026-11-23" in out  # the day row


def test_the_csv_exports(configured: dict[str, str]) -> None:
    code, out, _ = run(*PERIOD, "--csv", "conversations")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [r["conversation_id"] for r in rows] == [configured["helped"], configured["person"]]
    assert rows[0]["outcome"] == "deflected_confirmed" and rows[0]["ces"] == "6"
    assert rows[1]["first_question"] == "'-1 talk to a human please"  # neutralised
    assert rows[1]["agent"] == "ana@example.com"
    code, out, _ = run(*PERIOD, "--csv", "articles")
    assert code == 0, out
    articles = list(csv.DictReader(io.StringIO(out, newline="")))
    assert articles[0]["article_id"] == "returns/return-policy"
    assert articles[0]["helpful"] == "1"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tz", "Nowhere/Atlantis"], "unknown time zone"),
        (["--since", "2026-11-24", "--until", "2026-11-23"], "is after until"),
        (["--since", "yesterday"], "not a date"),
    ],
)
def test_bad_arguments_say_why(configured: dict[str, str], args: list[str], says: str) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert says in err


def test_the_command_line_stays_light() -> None:
    """`supportbot report` (and --help) must not pull in torch, Chroma or the embedder."""
    probe = (
        "import sys, bot.cli, bot.reports.cli; "
        "heavy = [m for m in ('torch', 'chromadb', 'sentence_transformers') if m in sys.modules]; "
        "print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
