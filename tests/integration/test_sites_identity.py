"""Known customers over real sockets: ``supportbot site ...``, the site's HMAC on the chat
socket, a verified customer's conversations on any device, and what agents see.

A real uvicorn server, real SQLite, the ``websockets`` client sending the site's ``Origin``; the
site registered with the real CLI (``supportbot site add``) or the same plain functions.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus

from bot.cli import app as cli_app
from bot.core.db import transaction
from bot.core.models import Conversation
from bot.core.settings import Settings, get_settings
from bot.people.sites import add_site
from bot.people.users import create_user
from tests.helpers.live_server import (
    ORIGIN,
    LiveServer,
    ScriptedAnswerer,
    chat_connect,
    hello,
    is_bot_message,
    quiet,
    recv,
    recv_until,
    send,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SHOP = "http://shop.example:8080"
STRICT_SHOP = "https://strict.example"


def sign(secret: str, user_id: str) -> str:
    """What the site's server computes (docs/widget.md): hex HMAC-SHA256(secret, user id)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours="24/7",
        _env_file=None,
    )
    with LiveServer(settings, ScriptedAnswerer(delay_s=0.01)) as live:
        yield live


@pytest.fixture
def secrets(server: LiveServer) -> dict[str, str]:
    with transaction(server.ctx.sessions) as session:
        shop = add_site(session, SHOP)
        strict = add_site(session, STRICT_SHOP, require_verification=True)
        return {SHOP: shop.secret, STRICT_SHOP: strict.secret}


def user(secret: str, user_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": user_id, "hash": sign(secret, user_id), **extra}


def conversation_row(server: LiveServer, conversation_id: str) -> Conversation:
    with server.ctx.sessions() as session:
        row = session.get(Conversation, conversation_id)
        assert row is not None
        session.expunge(row)
        return row


def test_site_commands_add_list_print_rotate_and_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPPORTBOT_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        added = runner.invoke(cli_app, ["site", "add", "https://WWW.Example.com/"])
        assert added.exit_code == 0, added.output
        assert "added https://www.example.com" in added.output
        secret = added.output.strip().splitlines()[-1]
        assert len(secret) >= 40
        again = runner.invoke(cli_app, ["site", "add", "https://www.example.com"])
        assert again.exit_code == 1 and "already registered" in again.output
        listed = runner.invoke(cli_app, ["site", "list"])
        assert "https://www.example.com\toptional" in listed.output
        assert secret not in listed.output  # list never shows secrets
        shown = runner.invoke(cli_app, ["site", "secret", "https://www.example.com"])
        assert shown.output.strip() == secret
        rotated = runner.invoke(cli_app, ["site", "secret", "https://www.example.com", "--rotate"])
        assert rotated.exit_code == 0 and rotated.output.strip() != secret
        strict = runner.invoke(
            cli_app, ["site", "set", "https://www.example.com", "--require-verification"]
        )
        assert strict.exit_code == 0
        listed = runner.invoke(cli_app, ["site", "list"])
        assert "https://www.example.com\trequire-verification" in listed.output
        bad = runner.invoke(cli_app, ["site", "add", "not a url"])
        assert bad.exit_code == 1 and "not an origin" in bad.output
        removed = runner.invoke(cli_app, ["site", "remove", "https://www.example.com"])
        assert removed.exit_code == 0
        assert runner.invoke(cli_app, ["site", "list"]).output.strip() == ""
    finally:
        get_settings.cache_clear()


async def test_a_registered_site_may_open_the_chat_and_an_unknown_one_may_not(
    server: LiveServer, secrets: dict[str, str]
) -> None:
    async with chat_connect(server.url, origin=SHOP) as ws:
        welcome = await hello(ws)
        assert welcome["type"] == "welcome"
        assert "customer" not in welcome and welcome["email_replies"] is False
    with pytest.raises(InvalidStatus) as refused:
        async with chat_connect(server.url, origin="https://stranger.example"):
            pass
    assert refused.value.response.status_code == 403


async def test_verified_customer_is_named_and_continues_on_another_device(
    server: LiveServer, secrets: dict[str, str]
) -> None:
    ana = user(secrets[SHOP], "u-42", name="Ana Silva", email="ana@example.com")
    async with chat_connect(server.url, origin=SHOP) as ws:
        first = await hello(ws, user=ana, locale="pt-BR")
        assert first["customer"] == {"name": "Ana Silva", "verified": True}
        assert first["resumed"] is False
        await send(ws, {"type": "message", "client_msg_id": "m1", "text": "Can I return it?"})
        await recv_until(ws, is_bot_message)
    row = conversation_row(server, first["conversation_id"])
    assert (row.customer_id, row.customer_name, row.customer_email) == (
        "u-42",
        "Ana Silva",
        "ana@example.com",
    )
    assert row.customer_verified is True and row.locale == "pt-BR"

    # Another device: no conversation id, no token, only the site's proof of who she is.
    async with chat_connect(server.url, origin=SHOP) as ws:
        second = await hello(ws, user=ana)
        assert second["conversation_id"] == first["conversation_id"]
        assert second["resumed"] is True and second["customer"]["verified"] is True
        assert second["resume_token"].startswith("ct1.")
        replay = [await recv(ws), await recv(ws)]
        assert [(m["seq"], m["role"]) for m in replay] == [(1, "customer"), (2, "bot")]
        await send(ws, {"type": "message", "client_msg_id": "m2", "text": "And exchange?"})
        ack = await recv(ws)
        assert ack["type"] == "ack" and ack["seq"] == 3

    # The signed token works as a resume token, and is renewed.
    async with chat_connect(server.url, origin=SHOP) as ws:
        third = await hello(
            ws,
            conversation_id=first["conversation_id"],
            resume_token=second["resume_token"],
            last_seq=4,
            user=ana,
        )
        assert third["type"] == "welcome" and third["resumed"] is True
        assert third["resume_token"].startswith("ct1.")


async def test_earlier_conversations_are_listed_for_the_verified_customer_only(
    server: LiveServer, secrets: dict[str, str]
) -> None:
    bo = user(secrets[SHOP], "u-7", name="Bo")
    async with chat_connect(server.url, origin=SHOP) as ws:
        opened = await hello(ws, user=bo)
        await send(ws, {"type": "message", "client_msg_id": "m1", "text": "Where is my parcel?"})
        await recv_until(ws, is_bot_message)
        await send(ws, {"type": "conversations"})
        listing = await recv_until(ws, lambda f: f["type"] == "conversations")
    found = listing[-1]["conversations"]
    assert [c["conversation_id"] for c in found] == [opened["conversation_id"]]
    assert found[0]["last_message"] == "Returns are free within 30 days."
    assert found[0]["resume_token"].startswith("ct1.")

    # Someone claiming to be Bo with a wrong hash gets nothing of his.
    impostor = {"id": "u-7", "name": "Bo", "hash": "00" * 32}
    async with chat_connect(server.url, origin=SHOP) as ws:
        welcome = await hello(ws, user=impostor)
        assert welcome["conversation_id"] != opened["conversation_id"]
        assert welcome["customer"] == {"name": "Bo", "verified": False}
        assert await quiet(ws, 0.3) == []  # no replay of Bo's conversation
        await send(ws, {"type": "conversations"})
        assert (await recv(ws)) == {"type": "conversations", "conversations": []}
        # Nor does Bo's token open it for a different verified customer.
    cy = user(secrets[SHOP], "u-8", name="Cy")
    async with chat_connect(server.url, origin=SHOP) as ws:
        refused = await hello(
            ws,
            conversation_id=opened["conversation_id"],
            resume_token=found[0]["resume_token"],
            user=cy,
        )
        assert refused["type"] == "error" and refused["code"] == "resume_failed"


async def test_a_site_that_requires_verification_treats_a_bad_hash_as_anonymous(
    server: LiveServer, secrets: dict[str, str]
) -> None:
    good = user(secrets[STRICT_SHOP], "u-1", name="Di", email="di@example.com")
    async with chat_connect(server.url, origin=STRICT_SHOP) as ws:
        verified = await hello(ws, user=good)
        assert verified["customer"] == {"name": "Di", "verified": True}
    for bad in ({**good, "hash": sign("wrong secret", "u-1")}, {"id": "u-1", "name": "Di"}):
        async with chat_connect(server.url, origin=STRICT_SHOP) as ws:
            welcome = await hello(ws, user=bad)
            assert welcome["type"] == "welcome"  # never an error
            assert "customer" not in welcome
            assert welcome["conversation_id"] != verified["conversation_id"]
            assert welcome["resumed"] is False
        row = conversation_row(server, welcome["conversation_id"])
        assert row.customer_id is None and row.customer_name is None


async def test_agents_see_who_the_customer_is_and_their_earlier_conversations(
    server: LiveServer, secrets: dict[str, str]
) -> None:
    ana = user(secrets[SHOP], "u-42", name="Ana Silva", email="ana@example.com")
    async with chat_connect(server.url, origin=SHOP) as ws:
        earlier = await hello(ws, user=ana)
    with transaction(server.ctx.sessions) as session:
        session.get(Conversation, earlier["conversation_id"]).state = "resolved"  # type: ignore[union-attr]
        _, token = create_user(session, "agent@example.com", "agent")
    async with chat_connect(server.url, origin=SHOP) as ws:
        current = await hello(ws, user=ana)
        assert current["conversation_id"] != earlier["conversation_id"]  # resolved: a new one
        await send(ws, {"type": "handoff_request"})
        await recv_until(ws, lambda f: f["type"] == "state")
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get(
            f"/api/agent/conversations/{current['conversation_id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer"] == {
        "id": "u-42",
        "name": "Ana Silva",
        "email": "ana@example.com",
        "verified": True,
        "site": SHOP,
        "locale": None,
    }
    assert [c["id"] for c in body["earlier_conversations"]] == [earlier["conversation_id"]]
    assert body["earlier_conversations"][0]["state"] == "resolved"
