"""The whole handoff over real sockets: a uvicorn server, the customer's /ws/chat, an agent on
/ws/agent and the agent HTTP API.

escalate -> queue -> claim -> the agent's reply arrives on the customer's socket -> the
customer's reply arrives at the agent -> resolve -> outcome ``escalated``; the bot stays silent
while a person holds the conversation; a reconnecting customer finds every message again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bot.core.db import transaction
from bot.core.models import Outcome
from bot.core.settings import Settings
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


@pytest.fixture
def answerer() -> ScriptedAnswerer:
    return ScriptedAnswerer(delay_s=0.01)


@pytest.fixture
def server(tmp_path: Path, answerer: ScriptedAnswerer) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path / "data",
        allowed_origins=[ORIGIN],
        business_hours="24/7",
        _env_file=None,
    )
    with LiveServer(settings, answerer) as live:
        yield live


@pytest.fixture
def agent_token(server: LiveServer) -> str:
    with transaction(server.ctx.sessions) as session:
        _, token = create_user(session, "ana@example.com", "agent")
    return token


def agent_connect(server: LiveServer, token: str) -> Any:
    return connect(
        f"ws://127.0.0.1:{server.port}/ws/agent",
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
    )


async def until(
    ws: ClientConnection, stop: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    return await recv_until(ws, stop, timeout=15)


def is_state(state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["type"] == "state" and f["state"] == state


async def test_full_handoff_over_real_sockets(
    server: LiveServer, answerer: ScriptedAnswerer, agent_token: str
) -> None:
    api = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{server.port}",
        headers={"Authorization": f"Bearer {agent_token}"},
        timeout=10,
    )
    async with agent_connect(server, agent_token) as agent, chat_connect(server.url) as customer:
        agent_hello = await recv(agent)
        assert agent_hello["type"] == "hello" and agent_hello["queue"] == []
        welcome = await hello(customer)
        conversation_id = welcome["conversation_id"]

        # The bot answers a normal question.
        await send(customer, {"type": "message", "client_msg_id": "c1", "text": "Where is it?"})
        await until(customer, is_bot_message)
        assert len(answerer.questions) == 1

        # Asking for a person: state frame + stored system message, no bot answer.
        await send(
            customer, {"type": "message", "client_msg_id": "c2", "text": "I want a real person"}
        )
        frames = await until(customer, is_state("awaiting_human"))
        assert frames[-1]["reason"] == "customer_request"
        system = await until(customer, lambda f: f["type"] == "message" and f["role"] == "system")
        assert "Connecting you with a person" in system[-1]["text"]

        # The queue: pushed to the agent socket and listed by the API.
        queued = await until(agent, lambda f: f["type"] == "queue" and f["action"] == "added")
        assert queued[-1]["item"]["conversation_id"] == conversation_id
        listed = (await api.get("/api/agent/queue")).json()["items"]
        assert [(i["conversation_id"], i["reason"]) for i in listed] == [
            (conversation_id, "customer_request")
        ]
        detail = (await api.get(f"/api/agent/conversations/{conversation_id}")).json()
        assert detail["escalation"]["reason"] == "customer_request"
        assert detail["sources"][0]["article_id"] == "returns/return-policy"
        assert [m["role"] for m in detail["messages"]][:3] == ["customer", "bot", "customer"]

        # Claim and watch.
        await send(agent, {"type": "watch", "conversation_id": conversation_id})
        await until(agent, lambda f: f["type"] == "watching")
        claimed = await api.post(f"/api/agent/conversations/{conversation_id}/claim")
        assert claimed.status_code == 200 and claimed.json()["state"] == "human"
        await until(customer, is_state("human"))
        joined = await until(customer, lambda f: f["type"] == "message" and f["role"] == "system")
        assert "joined" in joined[-1]["text"]

        # Typing, agent -> customer.
        await send(agent, {"type": "typing", "conversation_id": conversation_id})
        await until(customer, lambda f: f["type"] == "typing" and f["role"] == "agent")

        # The agent's reply arrives on the customer's socket.
        reply = await api.post(
            f"/api/agent/conversations/{conversation_id}/messages",
            json={"text": "Hi, I'm Ana. Which parcel is it?"},
        )
        assert reply.status_code == 201
        got = await until(customer, lambda f: f["type"] == "message" and f["role"] == "agent")
        assert got[-1]["text"] == "Hi, I'm Ana. Which parcel is it?"
        assert got[-1]["author"] == "Ana"

        # Typing and the customer's reply arrive at the agent, live; the bot stays silent.
        await send(customer, {"type": "typing"})
        await until(agent, lambda f: f["type"] == "typing" and f["role"] == "customer")
        await send(customer, {"type": "message", "client_msg_id": "c3", "text": "Parcel 123"})
        seen = await until(agent, lambda f: f["type"] == "message" and f["role"] == "customer")
        assert seen[-1]["text"] == "Parcel 123" and seen[-1]["conversation_id"] == conversation_id
        await until(customer, lambda f: f["type"] == "ack" and f["client_msg_id"] == "c3")
        # The socket handles frames in order: the reply to a later frame proves that c3's
        # handling, and any answer it would have started, is done. No fixed sleep.
        await send(customer, {"type": "feedback", "seq": 10**6, "helpful": True})
        await until(customer, lambda f: f["type"] == "error")
        server.wait_idle()
        assert len(answerer.questions) == 1
        assert not [f for f in await quiet(customer, 0.2) if is_bot_message(f)]

        # The agent can also reply over the socket.
        await send(
            agent, {"type": "message", "conversation_id": conversation_id, "text": "Found it"}
        )
        await until(customer, lambda f: f["type"] == "message" and f.get("text") == "Found it")

        # Resolve.
        resolved = await api.post(f"/api/agent/conversations/{conversation_id}/resolve")
        assert resolved.status_code == 200 and resolved.json()["state"] == "resolved"
        await until(customer, is_state("resolved"))
        assert (await api.get("/api/agent/queue")).json()["items"] == []

    # A reconnecting customer finds every message, the agent's and the system's included.
    async with chat_connect(server.url) as again:
        await send(
            again,
            {
                "type": "hello",
                "conversation_id": conversation_id,
                "resume_token": welcome["resume_token"],
                "last_seq": 0,
            },
        )
        replay = [f for f in await quiet(again, 1.0) if f["type"] == "message"]
        roles = [f["role"] for f in replay]
        assert roles.count("agent") == 2 and roles.count("system") == 3
        assert [f["seq"] for f in replay] == sorted(f["seq"] for f in replay)

    with server.ctx.sessions() as session:
        outcome = session.get(Outcome, conversation_id)
        assert outcome is not None
        assert (outcome.outcome, outcome.reason) == ("escalated", "customer_request")
        assert outcome.first_human_response_ms is not None and outcome.resolution_ms is not None
    await api.aclose()


async def test_handoff_button_twice_makes_one_queue_item(
    server: LiveServer, agent_token: str
) -> None:
    async with chat_connect(server.url) as customer:
        welcome = await hello(customer)
        await send(customer, {"type": "handoff_request"})
        await until(customer, is_state("awaiting_human"))
        await send(customer, {"type": "handoff_request"})
        await send(customer, {"type": "message", "client_msg_id": "x", "text": "agent please"})
        extra = await quiet(customer, 0.8)
        assert not [f for f in extra if f["type"] == "state"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as api:
        items = (
            await api.get("/api/agent/queue", headers={"Authorization": f"Bearer {agent_token}"})
        ).json()["items"]
    assert [i["conversation_id"] for i in items] == [welcome["conversation_id"]]


async def test_agent_api_refuses_without_token(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as api:
        assert (await api.get("/api/agent/queue")).status_code == 401
        response = await api.post("/api/agent/conversations/x/messages", json={"text": "hi"})
        assert response.status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - the handshake is refused (1008/403)
        async with connect(f"ws://127.0.0.1:{server.port}/ws/agent", open_timeout=5) as ws:
            json.loads(await ws.recv())
