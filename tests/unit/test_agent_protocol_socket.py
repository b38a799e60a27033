"""/ws/agent answers every malformed frame with an ``error`` frame and stays open."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.core.db import transaction
from bot.core.settings import Settings
from bot.people.users import create_user
from bot.web.app import create_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def client_and_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("agent-ws") / "data", _env_file=None)
    with TestClient(create_app(settings)) as client:
        with transaction(client.app.state.ctx.sessions) as session:  # type: ignore[attr-defined]
            _, token = create_user(session, "ana@example.com", "agent")
        yield client, token


def test_malformed_frames_get_errors_and_the_socket_stays_open(
    client_and_token: tuple[TestClient, str],
) -> None:
    client, token = client_and_token
    with client.websocket_connect("/ws/agent", headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.receive_json() == {"type": "hello", "agent": "ana@example.com", "queue": []}
        cases: list[tuple[str, str]] = [
            ("not json", "invalid_json"),
            ("[1]", "invalid_json"),
            (json.dumps({"type": "claim"}), "unknown_type"),
            (json.dumps({"type": "watch"}), "invalid_frame"),
            (json.dumps({"type": "message", "conversation_id": "c", "text": ""}), "invalid_frame"),
            (
                json.dumps({"type": "message", "conversation_id": "c", "text": "x" * 8001}),
                "invalid_frame",
            ),
            (json.dumps({"type": "message", "conversation_id": "nope", "text": "hi"}), "refused"),
        ]
        for raw, code in cases:
            ws.send_text(raw)
            frame: dict[str, Any] = ws.receive_json()
            assert frame["type"] == "error" and frame["code"] == code, (raw, frame)
            assert set(frame) == {"type", "code", "detail"}
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
        ws.send_json({"type": "watch", "conversation_id": "c1"})
        assert ws.receive_json() == {"type": "watching", "conversation_id": "c1"}
        ws.send_json({"type": "unwatch", "conversation_id": "c1"})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}
