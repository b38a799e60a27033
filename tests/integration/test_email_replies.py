"""Replies by e-mail against a real SMTP server (aiosmtpd, started here) and a real service.

An agent replies (agent API) while the customer has no chat open: the reply arrives by e-mail at
the verified address, or at the one the customer left, with a link; the link's page opens the
widget on the conversation, and its token resumes the conversation on the chat socket, where the
customer answers. A reply the customer saw live is never e-mailed; without SMTP nothing is
queued and the widget is told (``email_replies`` false); a failing server is retried with
backoff until the last try.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from bot.conversations import outbox
from bot.core.clock import utcnow
from bot.core.db import DatabaseWorkers, make_engine, make_session_factory, transaction
from bot.core.migrate import upgrade_database
from bot.core.models import OutboxEmail
from bot.core.settings import Settings
from bot.people.sites import add_site
from bot.people.users import create_user
from tests.helpers.live_server import (
    LiveServer,
    ScriptedAnswerer,
    chat_connect,
    hello,
    quiet,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SHOP = "http://shop.example:8080"


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str]] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        """Accepts bot/pw only (the service's SMTP URL carries them)."""
        if isinstance(data, LoginPassword):
            login = (data.login.decode(), data.password.decode())
            self.logins.append(login)
            return AuthResult(success=login == ("bot", "pw"))
        return AuthResult(success=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def wait(self, count: int = 1, timeout: float = 15.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} e-mail(s) arrived, wanted {count}")
            time.sleep(0.05)
        return self.messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=inbox.authenticate,
        auth_require_tls=False,  # a local test server without TLS; production uses STARTTLS
    )
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        allowed_origins=["http://localhost:8000"],
        business_hours="24/7",
        email_reply_after_minutes=0,
        email_poll_interval_s=0.1,
        smtp_from="Parcelly Help <help@parcelly.example>",
        _env_file=None,
        **overrides,
    )


@pytest.fixture
def server(tmp_path: Path, smtp: tuple[Inbox, int]) -> Iterator[LiveServer]:
    settings = settings_for(tmp_path, smtp_url=f"smtp://bot:pw@127.0.0.1:{smtp[1]}")
    live = LiveServer(settings, ScriptedAnswerer(delay_s=0.01))
    settings.public_url = f"http://127.0.0.1:{live.port}"  # known once the port is bound
    with live:
        yield live


def agent_token(server: LiveServer) -> str:
    with transaction(server.ctx.sessions) as session:
        _, token = create_user(session, "ana@parcelly.example", "agent")
    return token


async def agent_reply(server: LiveServer, token: str, conversation_id: str, text: str) -> None:
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            f"/api/agent/conversations/{conversation_id}/messages",
            json={"text": text},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 201, response.text


def body_of(message: EmailMessage) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode().replace("\r\n", "\n")


def link_of(message: EmailMessage) -> str:
    body = body_of(message)
    match = re.search(r"http://\S+/resume\?token=\S+", body)
    assert match, body
    return match.group(0)


async def test_reply_to_a_verified_customer_who_left_arrives_by_email_and_the_link_resumes(
    server: LiveServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    with transaction(server.ctx.sessions) as session:
        secret = add_site(session, SHOP).secret
    user_hash = hmac.new(secret.encode(), b"u-42", hashlib.sha256).hexdigest()
    ana = {"id": "u-42", "name": "Ana", "email": "ana@example.com", "hash": user_hash}
    token = agent_token(server)
    async with chat_connect(server.url, origin=SHOP) as ws:
        welcome = await hello(ws, user=ana)
        assert welcome["email_replies"] is True
        await send(ws, {"type": "handoff_request"})
        await recv_until(ws, lambda f: f["type"] == "state")
    conversation_id = welcome["conversation_id"]
    await agent_reply(server, token, conversation_id, "Your refund left today.\nSee you!")

    (mail,) = await asyncio.to_thread(inbox.wait, 1)
    assert mail["To"] == "ana@example.com"
    assert mail["From"] == "Parcelly Help <help@parcelly.example>"
    assert mail["Subject"] == "New reply to your conversation"
    assert inbox.envelopes[0][1] == ["ana@example.com"]
    assert inbox.logins == [("bot", "pw")]
    text = body_of(mail)
    assert "Hello Ana," in text and "> Your refund left today.\n> See you!" in text

    # The link's page opens the widget on the conversation.
    link = link_of(mail)
    assert link.startswith(f"http://127.0.0.1:{server.port}/resume?token=ct1.")
    async with httpx.AsyncClient() as client:
        page = await client.get(link)
    assert page.status_code == 200
    assert conversation_id in page.text and "/widget/supportbot.js" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"

    # The token resumes the conversation on the chat socket (the page's own origin), whole.
    link_token = parse_qs(urlsplit(link).query)["token"][0]
    async with chat_connect(server.url, origin=f"http://127.0.0.1:{server.port}") as ws:
        resumed = await hello(ws, conversation_id=conversation_id, resume_token=link_token)
        assert resumed["type"] == "welcome" and resumed["resumed"] is True
        replay = await recv_until(ws, lambda f: f.get("role") == "agent")
        assert replay[-1]["text"] == "Your refund left today.\nSee you!"
        await send(ws, {"type": "message", "client_msg_id": "r1", "text": "Thanks!"})
        frames = await recv_until(ws, lambda f: f["type"] == "ack")
        assert frames[-1]["seq"] > replay[-1]["seq"]

    # Sent once: the reply is not e-mailed again.
    await asyncio.sleep(0.5)
    assert len(inbox.messages) == 1
    with server.ctx.sessions() as session:
        rows = session.scalars(select(OutboxEmail)).all()
        assert [(r.status, r.attempts) for r in rows] == [("sent", 1)]


async def test_the_address_left_out_of_hours_gets_the_reply_and_a_reply_seen_live_does_not(
    server: LiveServer, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    token = agent_token(server)
    async with chat_connect(server.url) as ws:
        welcome = await hello(ws)
        conversation_id = welcome["conversation_id"]
        await send(ws, {"type": "handoff_request"})
        await recv_until(ws, lambda f: f["type"] == "state")
        await send(ws, {"type": "message", "client_msg_id": "e", "text": "bob@example.com"})
        await recv_until(ws, lambda f: f.get("role") == "system" and "bob@" in f["text"])
        # Seen live: the customer is here while the agent replies.
        await agent_reply(server, token, conversation_id, "Looking into it now.")
        await recv_until(ws, lambda f: f.get("role") == "agent")
        await asyncio.sleep(0.5)  # several outbox rounds
    await asyncio.sleep(0.5)
    assert inbox.messages == []

    await agent_reply(server, token, conversation_id, "Found it: it ships tomorrow.")
    (mail,) = await asyncio.to_thread(inbox.wait, 1)
    assert mail["To"] == "bob@example.com"
    text = body_of(mail)
    assert "Found it: it ships tomorrow." in text
    assert "Looking into it now." not in text  # seen live, never e-mailed


async def test_without_smtp_the_widget_is_told_and_nothing_is_queued(tmp_path: Path) -> None:
    with LiveServer(settings_for(tmp_path), ScriptedAnswerer()) as server:
        token = agent_token(server)
        async with chat_connect(server.url) as ws:
            welcome = await hello(ws)
            assert welcome["email_replies"] is False
            await send(ws, {"type": "handoff_request"})
            await recv_until(ws, lambda f: f["type"] == "state")
            await send(ws, {"type": "message", "client_msg_id": "e", "text": "me@example.com"})
            await quiet(ws, 0.3)
        await agent_reply(server, token, welcome["conversation_id"], "Hello again")
        await asyncio.sleep(0.5)
        with server.ctx.sessions() as session:
            assert session.scalars(select(OutboxEmail)).all() == []


async def test_a_failing_mail_server_is_retried_with_backoff_then_given_up(
    tmp_path: Path, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    (tmp_path / "data").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'outbox.sqlite'}")
    upgrade_database(engine)
    sessions = make_session_factory(engine)
    database = DatabaseWorkers(sessions)
    down = settings_for(tmp_path, smtp_url=f"smtp://127.0.0.1:{free_port()}", smtp_timeout_s=2)
    try:
        with transaction(sessions) as session:
            email_id = outbox.queue_email(
                session, to="cy@example.com", subject="Hi", body="A reply"
            ).id
        started = utcnow()
        assert await outbox.outbox_round(database, down, lambda: []) == 0
        with sessions() as session:
            row = session.get(OutboxEmail, email_id)
            assert row is not None
            assert (row.status, row.attempts) == ("pending", 1)
            assert row.last_error and "Connection" in row.last_error
            wait = row.next_attempt_at.replace(tzinfo=started.tzinfo) - started
            assert timedelta(seconds=29) <= wait <= timedelta(seconds=40)
        # Not due yet: nothing is tried.
        await outbox.outbox_round(database, down, lambda: [])
        with sessions() as session:
            assert session.get(OutboxEmail, email_id).attempts == 1  # type: ignore[union-attr]
        assert outbox.backoff_s(2) == 60 and outbox.backoff_s(20) == outbox.BACKOFF_MAX_S

        # Due again and the server is back: sent.
        up = settings_for(tmp_path, smtp_url=f"smtp://127.0.0.1:{port}")
        with transaction(sessions) as session:
            session.get(OutboxEmail, email_id).next_attempt_at = utcnow()  # type: ignore[union-attr]
        assert await outbox.outbox_round(database, up, lambda: []) == 1
        assert inbox.wait(1)[0]["To"] == "cy@example.com"
        with sessions() as session:
            row = session.get(OutboxEmail, email_id)
            assert row is not None and (row.status, row.attempts) == ("sent", 2)

        # A server that stays down: the last try marks the e-mail failed.
        last = settings_for(
            tmp_path, smtp_url=f"smtp://127.0.0.1:{free_port()}", email_retry_max_attempts=1
        )
        with transaction(sessions) as session:
            other = outbox.queue_email(session, to="dy@example.com", subject="Hi", body="x").id
        await outbox.outbox_round(database, last, lambda: [])
        with sessions() as session:
            assert session.get(OutboxEmail, other).status == "failed"  # type: ignore[union-attr]
    finally:
        database.close()
        engine.dispose()


async def test_an_expired_or_forged_link_gets_a_plain_page(server: LiveServer) -> None:
    from bot.people.identity import conversation_token

    base = f"http://127.0.0.1:{server.port}"
    expired = conversation_token(server.settings, "0" * 32, valid_s=-10)
    async with httpx.AsyncClient(base_url=base) as client:
        for token in (expired, "ct1.abc.9999999999.forged", ""):
            page = await client.get("/resume", params={"token": token})
            assert page.status_code == 410
            assert "expired" in page.text and "supportbot.js" not in page.text


def test_smtp_urls_are_parsed() -> None:
    target = outbox.parse_smtp_url("smtps://me%40x.com:p%3Ass@mail.example.com")
    assert (target.host, target.port, target.tls) == ("mail.example.com", 465, True)
    assert (target.username, target.password) == ("me@x.com", "p:ss")
    plain = outbox.parse_smtp_url("smtp://mail.example.com:2525")
    assert (plain.port, plain.tls, plain.username) == (2525, False, None)
    with pytest.raises(ValueError):
        outbox.parse_smtp_url("http://mail.example.com")


def test_a_reply_committed_between_heartbeats_is_not_mailed_to_a_customer_who_is_here(
    tmp_path: Path,
) -> None:
    """The race the heartbeat alone left open: the customer's socket is open, the last
    heartbeat is older than an agent's reply, and a queue step runs before the next one. A
    conversation open in this process is never "away"; once its socket closes, the close time
    decides what was seen."""
    from bot.conversations import store
    from bot.core.models import Conversation

    settings = settings_for(tmp_path, smtp_url="smtp://127.0.0.1:1")
    engine = make_engine(f"sqlite:///{tmp_path / 'mail.sqlite'}")
    upgrade_database(engine)
    sessions = make_session_factory(engine)
    heartbeat = utcnow() - timedelta(seconds=5)
    with transaction(sessions) as session:
        cid = store.create_conversation(session)[0].id
        conversation = session.get(Conversation, cid)
        assert conversation is not None
        conversation.contact_email = "bob@example.com"
        conversation.customer_seen_at = heartbeat
        session.flush()
        store.append_message(session, cid, role="agent", text="Looking into it now.")
    with transaction(sessions) as session:
        assert outbox.queue_agent_replies(session, settings, present=[cid]) == 0
    with transaction(sessions) as session:  # the socket closed before the reply: away now
        assert outbox.queue_agent_replies(session, settings) == 1
        [row] = session.scalars(select(OutboxEmail)).all()
        assert row.to_address == "bob@example.com" and "Looking into it now." in row.body
    engine.dispose()
