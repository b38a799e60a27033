"""Learned questions end to end, against a real server (uvicorn, real SQLite, a temp-dir Chroma
built by the ingest pipeline, the real embedder): a helpful vote on the chat socket and an agent's
resolution with "the article that answers this" propose the customer's question (masked); an
admin approves, re-assigns, rejects and removes through ``/api/admin/learned``; an approved
question makes the next customer's paraphrase answerable from the article's own text; it
survives a re-ingest, is written beside the article for git and read back by a fresh service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.core.db import transaction
from bot.core.models import LearnedQuestion
from bot.core.settings import Settings
from bot.knowledge import learned
from bot.people.users import create_user
from ingest.embedder import Embedder
from ingest.loaders import load_folder
from ingest.pipeline import index_paths
from tests.helpers.kb import ARTICLES, to_markdown
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    chat_connect,
    hello,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PASSWORD = "correct horse battery"
RESET = "account/reset-password"
SHIPPING = "shipping/delivery-times"
RETURNS = "returns/return-policy"


@dataclass
class Team:
    server: LiveServer
    http: httpx.Client
    tokens: dict[str, str]

    @property
    def kb(self) -> Path:
        return self.server.settings.kb_path

    def as_(self, role: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        return self.http.request(method, url, headers=headers, **kwargs)

    def admin(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.as_("admin", method, url, **kwargs)

    def ask(self, question: str) -> dict[str, Any]:
        response = self.http.post("/api/ask", json={"question": question})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def learned(self, **params: Any) -> list[dict[str, Any]]:
        response = self.admin("GET", "/api/admin/learned", params={"per_page": 200, **params})
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def _settings(root: Path, kb: Path, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=root / "data",
        kb_path=kb,
        allowed_origins=[ORIGIN],
        business_hours="24/7",
        _env_file=None,
        **extra,
    )


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("learned")
    kb = root / "kb"
    for article in ARTICLES:
        path = kb / f"{article.article_id}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_markdown(article))
    settings = _settings(root, kb)
    index_paths([kb], settings, embedder)
    server = LiveServer(settings)
    settings.port = server.port
    with server:
        tokens = {}
        with transaction(server.ctx.sessions) as session:
            for role in ("agent", "lead", "admin"):
                _, token = create_user(session, f"{role}@example.com", role, password=PASSWORD)
                tokens[role] = token
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=60) as http:
            yield Team(server, http, tokens)


def is_bot_or_handoff(frame: dict[str, Any]) -> bool:
    return (frame["type"] == "message" and frame["role"] == "bot") or (
        frame["type"] == "state" and frame["state"] == "awaiting_human"
    )


async def ask_and_vote(team: Team, question: str) -> dict[str, Any]:
    """A customer asks on the socket and votes the bot's answer helpful."""
    async with chat_connect(team.server.url) as ws:
        await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": question})
        answer = (await recv_until(ws, is_bot_or_handoff, timeout=30))[-1]
        assert answer["type"] == "message", answer
        await send(ws, {"type": "feedback", "seq": answer["seq"], "helpful": True})
        await asyncio.sleep(0.3)  # the vote is stored by the server's socket session
    return answer


async def escalate(team: Team, question: str) -> str:
    """A customer asks, then asks for a person; the conversation id."""
    async with chat_connect(team.server.url) as ws:
        welcome = await hello(ws)
        await send(ws, {"type": "message", "client_msg_id": "q1", "text": question})
        frame = (await recv_until(ws, is_bot_or_handoff, timeout=30))[-1]
        if frame["type"] == "message":
            await send(ws, {"type": "handoff_request"})
            await recv_until(
                ws, lambda f: f["type"] == "state" and f["state"] == "awaiting_human", timeout=30
            )
    return str(welcome["conversation_id"])


def resolve_with(team: Team, conversation_id: str, article_id: str | None) -> httpx.Response:
    base = f"/api/agent/conversations/{conversation_id}"
    assert team.as_("agent", "POST", f"{base}/claim").status_code == 200
    reply = team.as_("agent", "POST", f"{base}/messages", json={"text": "Here is how."})
    assert reply.status_code == 201
    body = {"article_id": article_id} if article_id else None
    return team.as_("agent", "POST", f"{base}/resolve", json=body)


def test_helpful_vote_proposes_the_question_masked(team: Team) -> None:
    question = "How do I reset my password? I am jo.doe@example.com, phone +44 7700 900123"
    answer = asyncio.run(ask_and_vote(team, question))
    article_id = answer["sources"][0]["article_id"]
    assert article_id == RESET
    found = [c for c in team.learned(status="candidate") if c["source"] == "helpful"]
    assert len(found) == 1, found
    text = found[0]["question"]
    assert found[0]["article_id"] == RESET and "reset my password" in text
    assert "jo.doe" not in text and "[email]" in text and "900123" not in text
    assert not team.learned(status="approved")  # an admin decides (auto-approve is off)


def test_agent_resolution_teaches_the_bot_a_paraphrase(team: Team) -> None:
    future = "I can't get into my account"
    before = team.ask(future)
    assert before["escalate"] or before["sources"][0]["article_id"] != RESET, before

    conversation_id = asyncio.run(escalate(team, "I cannot log in to my account"))
    assert resolve_with(team, conversation_id, RESET).status_code == 200
    candidate = next(c for c in team.learned(status="candidate") if c["source"] == "agent")
    assert candidate["article_id"] == RESET and candidate["question"] == (
        "I cannot log in to my account"
    )

    approved = team.admin("POST", f"/api/admin/learned/{candidate['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"

    after = team.ask(future)
    assert not after["escalate"], after
    assert after["sources"][0]["article_id"] == RESET
    assert "log in to my account" not in after["answer"]  # the answer is the article's text
    assert after["confidence"] > before["confidence"]

    # Beside the article, for git; the audit trail names the admin.
    sidecar = team.kb / f"{RESET}.learned.jsonl"
    lines = [json.loads(line) for line in sidecar.read_text().splitlines()]
    assert {k: lines[0][k] for k in ("question", "approved_by")} == {
        "question": "I cannot log in to my account",
        "approved_by": "admin@example.com",
    }
    audit = team.admin("GET", "/api/admin/learned/audit", params={"learned_id": candidate["id"]})
    actions = [(a["action"], a["actor"]) for a in audit.json()]
    assert ("approve", "admin@example.com") in actions and ("propose", None) in actions

    # Shown on the article's page.
    listed = team.learned(status="approved", article_id=RESET)
    assert [item["question"] for item in listed] == ["I cannot log in to my account"]

    # A re-ingest of the article (an edit through the admin API) keeps it.
    article = team.admin("GET", f"/api/admin/articles/{RESET}").json()
    edited = team.admin(
        "PUT",
        f"/api/admin/articles/{RESET}",
        json={
            **{k: article[k] for k in ("title", "body", "url", "tags", "version")},
            "body": article["body"] + "\n\nStill stuck? Contact support.",
        },
    )
    assert edited.status_code == 200, edited.text
    again = team.ask(future)
    assert not again["escalate"] and again["sources"][0]["article_id"] == RESET


def test_resolve_refuses_an_unknown_article(team: Team) -> None:
    conversation_id = asyncio.run(escalate(team, "is there a student discount"))
    base = f"/api/agent/conversations/{conversation_id}"
    assert team.as_("agent", "POST", f"{base}/claim").status_code == 200
    refused = team.as_("agent", "POST", f"{base}/resolve", json={"article_id": "no/such"})
    assert refused.status_code == 422
    assert team.as_("agent", "POST", f"{base}/resolve").status_code == 200  # body optional


def propose(team: Team, article_id: str, question: str, conversation: str) -> int:
    with transaction(team.server.ctx.sessions) as session:
        row = learned.propose(
            session, article_id, question, source="agent", conversation_id=conversation
        )
        assert row is not None
        return row.id


def test_reject_reassign_bulk_and_duplicates(team: Team) -> None:
    # Proposed twice from two conversations: one candidate with two confirmations.
    first = propose(team, RETURNS, "Order 12345678 is late, can it come sooner?", "c-a")
    second = propose(team, RETURNS, "order 87654321 is late - can it come sooner", "c-b")
    assert first == second
    row = next(c for c in team.learned(status="candidate") if c["id"] == first)
    assert row["confirmations"] == 2 and "12345678" not in row["question"]

    # Re-assigned to the right article on approval.
    moved = team.admin(
        "POST", f"/api/admin/learned/{first}/approve", json={"article_id": SHIPPING}
    ).json()
    assert (moved["article_id"], moved["status"]) == (SHIPPING, "approved")
    audit = team.admin("GET", "/api/admin/learned/audit", params={"learned_id": first}).json()
    assert audit[0]["action"] == "reassign" and audit[0]["previous_article_id"] == RETURNS

    # A near-duplicate of an approved question is merged into it, not learned twice.
    twin = propose(team, SHIPPING, "Order 12345678 is late, can it come sooner??!", "c-c")
    assert twin == first  # same normalised text: the same candidate
    near = propose(team, SHIPPING, "order is late; can it come sooner", "c-d")
    merged = team.admin("POST", f"/api/admin/learned/{near}/approve").json()
    assert merged["id"] in (first, near)
    approved = [c for c in team.learned(status="approved", article_id=SHIPPING)]
    assert len({c["question"].casefold() for c in approved}) == len(approved)

    # Bulk reject; a rejected question is not proposed again.
    ids = [
        propose(team, SHIPPING, "do you deliver to the moon", "c-e"),
        propose(team, SHIPPING, "do you ship to mars", "c-f"),
    ]
    rejected = team.admin("POST", "/api/admin/learned/bulk", json={"ids": ids, "action": "reject"})
    assert rejected.status_code == 200 and {r["status"] for r in rejected.json()} == {"rejected"}
    with transaction(team.server.ctx.sessions) as session:
        assert (
            learned.propose(
                session,
                SHIPPING,
                "Do you deliver to the moon?",
                source="helpful",
                conversation_id="c-g",
            )
            is None
        )
    assert not [c for c in team.learned(status="candidate") if c["id"] in ids]

    # Removing an approved one takes it off the article and out of the sidecar.
    kept = team.learned(status="approved", article_id=SHIPPING)
    gone = kept[0]
    assert team.admin("DELETE", f"/api/admin/learned/{gone['id']}").status_code == 204
    sidecar = team.kb / f"{SHIPPING}.learned.jsonl"
    remaining = sidecar.read_text() if sidecar.exists() else ""
    assert json.dumps(gone["question"]) not in remaining
    assert gone["id"] not in [c["id"] for c in team.learned(status="approved")]
    with transaction(team.server.ctx.sessions) as session:  # and is not proposed again
        again = learned.propose(session, SHIPPING, gone["question"], source="agent")
        assert again is None

    # Only admins.
    assert team.as_("agent", "GET", "/api/admin/learned").status_code == 403
    assert team.http.get("/api/admin/learned").status_code == 401


def test_auto_approve_after_independent_confirmations(team: Team) -> None:
    with transaction(team.server.ctx.sessions) as session:
        for conversation in ("v1", "v1", "v2"):
            row = learned.propose(
                session,
                RESET,
                "forgot my pass word what now",
                source="helpful",
                conversation_id=conversation,
                auto_approve=3,
            )
        assert row is not None and row.status == "candidate"  # two conversations, not three
        row = learned.propose(
            session,
            RESET,
            "forgot my pass word what now",
            source="helpful",
            conversation_id="v3",
            auto_approve=3,
        )
        assert row is not None and row.status == "approved" and row.decided_by is None


def test_sidecars_are_not_articles_and_come_back_in_a_fresh_service(
    team: Team, tmp_path: Path, embedder: Embedder
) -> None:
    sidecar = team.kb / f"{RESET}.learned.jsonl"
    assert sidecar.exists()
    assert all(not a.id.endswith(".learned") for a in load_folder(team.kb).articles)

    # A clone of the articles folder (what git keeps) on a new data directory.
    settings = _settings(tmp_path, team.kb)
    report = index_paths([team.kb], settings, embedder)
    assert report.ok and not report.failed
    with LiveServer(settings) as fresh:
        with fresh.ctx.sessions() as session:
            rows = session.scalars(
                select(LearnedQuestion).where(LearnedQuestion.article_id == RESET)
            ).all()
        assert "I cannot log in to my account" in {r.text for r in rows if r.status == "approved"}
        with httpx.Client(base_url=f"http://127.0.0.1:{fresh.port}", timeout=60) as http:
            body = http.post("/api/ask", json={"question": "I can't get into my account"}).json()
        assert not body["escalate"] and body["sources"][0]["article_id"] == RESET


def test_agent_answers_no_article_holds_feed_the_gaps_and_the_draft(team: Team) -> None:
    conversation_id = asyncio.run(escalate(team, "do you offer a student discount on gift cards"))
    assert resolve_with(team, conversation_id, None).status_code == 200  # no article attached
    gaps = team.as_("lead", "GET", "/api/reports/gaps").json()
    group = next(g for g in gaps["groups"] if "student discount" in " ".join(g["questions"]))
    assert group["reasons"].get("agent_answered") == 1
    assert "Here is how." in group["replies"]
    assert "student discount" in " ".join(group["draft"]["questions"])
    # A conversation whose agent named the article is no content gap: the KB had the answer.
    assert not any("log in to my account" in " ".join(g["questions"]) for g in gaps["groups"])

    # Publishing the draft attaches the group's questions as learned questions of the article.
    created = team.admin(
        "POST",
        "/api/admin/articles",
        json={"title": "Student discount", "body": "Students get 10% off with a student card."},
    )
    assert created.status_code == 201, created.text
    article_id = created.json()["id"]
    attached = team.admin(
        "POST",
        "/api/admin/learned",
        json={
            "article_id": article_id,
            "questions": group["draft"]["questions"],
            "source": "draft",
        },
    )
    assert attached.status_code == 201, attached.text
    assert {item["status"] for item in attached.json()} == {"approved"}
    assert (team.kb / f"{article_id}.learned.jsonl").exists()
