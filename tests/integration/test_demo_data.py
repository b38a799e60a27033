"""``supportbot demo-data``: fills a fresh data directory through the real conversation code,
refuses a database that already holds conversations unless ``--force``, and the report API then
shows a living dashboard (deflection, escalations with every kind of reason, agent replies, CSAT,
content gaps).

Because the demo drives the state machine and the ledger, the ledger's report must equal the one
recomputed from the stored history alone: the same check the figures' own tests make.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.core.db import make_engine, make_session_factory, transaction
from bot.core.models import Conversation, Message
from bot.core.settings import Settings, get_settings
from bot.people.users import create_user
from bot.reports.demo_data import DEMO_ORIGIN
from bot.reports.figures import make_period, summary_from_history, summary_from_ledger
from bot.web.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
DAYS = 10


def count_conversations(settings: Settings) -> int:
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as session:
            return int(session.scalar(select(func.count(Conversation.id))) or 0)
    finally:
        engine.dispose()


def count_conversations_with_a_question(settings: Settings) -> int:
    """What the report counts: conversations in which the customer wrote. A demo conversation
    that opens in the last seconds before ``now`` has no question yet (its customer writes
    5-40 s after opening), so this can be one or two less than all conversations."""
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as session:
            asked = select(func.count(func.distinct(Message.conversation_id))).where(
                Message.role == "customer"
            )
            return int(session.scalar(asked) or 0)
    finally:
        engine.dispose()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    data = tmp_path / "data"
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(data))
    get_settings.cache_clear()
    yield data
    get_settings.cache_clear()


def test_fills_a_fresh_dir_refuses_a_second_run_and_the_report_comes_alive(data_dir: Path) -> None:
    from bot.cli import app as cli

    runner = CliRunner()
    first = runner.invoke(cli, ["demo-data", "--days", str(DAYS)])
    assert first.exit_code == 0, first.output
    settings = get_settings()
    written = count_conversations(settings)
    assert written > 8 * DAYS, first.output  # about 15 a weekday, 9 a weekend day
    assert f"{written} demo conversations" in first.output

    # A second run would mix demo rows into what is there: refused, nothing written.
    again = runner.invoke(cli, ["demo-data", "--days", str(DAYS)])
    assert again.exit_code == 1
    assert "already holds conversations" in again.output
    assert count_conversations(settings) == written

    forced = runner.invoke(cli, ["demo-data", "--days", "2", "--force", "--seed", "8"])
    assert forced.exit_code == 0, forced.output
    total = count_conversations(settings)
    assert total > written

    app_settings = Settings(data_dir=data_dir, _env_file=None)
    with TestClient(create_app(app_settings), base_url="http://localhost:8000") as client:
        sessions = client.app.state.ctx.sessions  # type: ignore[attr-defined]
        with transaction(sessions) as session:
            _, token = create_user(session, "lead@example.com", "lead")
            # Every conversation is marked as demo data.
            origins = set(session.scalars(select(Conversation.origin)))
            assert origins == {DEMO_ORIGIN}
        auth = {"Authorization": f"Bearer {token}"}

        summary = client.get("/api/reports/summary", headers=auth).json()
        total_figures = summary["total"]
        assert total_figures["conversations"] == count_conversations_with_a_question(settings)
        assert total - 2 <= total_figures["conversations"] <= total
        assert total_figures["deflection_rate"] > 0.4
        assert 0.1 < total_figures["escalation_rate"] < 0.5
        assert total_figures["deflected_confirmed"] > 0 and total_figures["deflected_assumed"] > 0
        reasons = set(total_figures["escalations_by_reason"])
        assert {"customer_request", "no_knowledge", "sensitive_topic"} <= reasons
        assert total_figures["first_human_response_ms"]["count"] > 0
        assert total_figures["csat"]["responses"] > 0 and total_figures["ces"]["responses"] > 0
        assert {a["agent"] for a in summary["agents"]} >= {"ana.smith@example.com"}
        assert any(a["cited"] > 0 for a in summary["articles"])
        assert any(d["queue_waiting_peak"] for d in summary["days"])

        gaps = client.get("/api/reports/gaps", headers=auth).json()
        assert gaps["questions"] > 0 and gaps["groups"]
        biggest = gaps["groups"][0]
        assert biggest["count"] >= 2 and biggest["draft_url"].startswith("/admin#draft=")
        assert any(group["replies"] for group in gaps["groups"])
        counts = [group["count"] for group in gaps["groups"]]
        assert counts == sorted(counts, reverse=True)

        # The ledger the real code kept equals the outcomes recomputed from history.
        with sessions() as session:
            at = datetime.fromisoformat(summary["generated_at"])
            period = make_period(tz="UTC", now=at)
            ledger = summary_from_ledger(session, period, now=at)
            history = summary_from_history(
                session, period, now=at, window_hours=app_settings.deflection_window_hours
            )
            assert ledger.total == history.total
            assert ledger.days == history.days


def test_the_same_seed_writes_the_same_history(tmp_path: Path) -> None:
    """Reproducible demos: with the same seed and clock, the same conversations."""
    from bot.core.migrate import upgrade_database
    from bot.reports.demo_data import fill_demo_data

    now = datetime(2026, 3, 6, 12, 0, tzinfo=UTC)
    figures = []
    for name in ("a", "b"):
        settings = Settings(data_dir=tmp_path / name, _env_file=None)
        settings.data_dir.mkdir(parents=True)
        engine = make_engine(settings.effective_database_url)
        upgrade_database(engine)
        sessions = make_session_factory(engine)
        summary = fill_demo_data(sessions, settings, days=3, now=now, seed=11)
        with sessions() as session:
            period = make_period(tz="UTC", now=now - timedelta(hours=1))
            figures.append((summary.scenarios, summary_from_ledger(session, period, now=now).total))
        engine.dispose()
    assert figures[0] == figures[1]
