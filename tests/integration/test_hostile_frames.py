"""Defect 8 (issue #12): hostile frames raised tracebacks. ``seq``/``last_seq`` >= 2**63 raised
OverflowError in the database layer and deeply nested JSON raised RecursionError, so the client
got ``internal_error`` instead of ``invalid_frame``/``invalid_json``; a binary frame on
``/ws/agent`` dropped the socket where docs/agents.md promises an error frame.

The frame kit now refuses them before any model or query sees them (a depth limit counted
before decoding, numbers bounded to +-(2**53 - 1)); both sockets answer binary frames as UTF-8
JSON. Checked on the parsers and against a real server process, whose log must stay free of
tracebacks.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bot.conversations.agent_frames import AgentProtocolError, parse_agent_frame
from bot.conversations.framekit import MAX_JSON_DEPTH, MAX_SAFE_INT, too_deep
from bot.conversations.frames import ProtocolError, parse_client_frame
from tests.helpers.child_server import ChildServer
from tests.helpers.live_server import hello, recv, send

NESTED = "[" * 100_000 + "]" * 100_000
NESTED_OBJECT = '{"type": "hello", "visitor": ' + '{"a": ' * 3000 + "1" + "}" * 3001
# Within the server's 16 KiB frame cap, still far past Python's recursion limit for the decoder
# once the stack is already deep.
DEEP = "[" * 8000 + "]" * 8000
DEEP_OBJECT = '{"type": "hello", "visitor": ' + '{"a": ' * 1500 + "1" + "}" * 1501


def code_of(raw: str | bytes, agent: bool = False) -> str:
    parse = parse_agent_frame if agent else parse_client_frame
    with pytest.raises((ProtocolError, AgentProtocolError)) as caught:
        parse(raw)
    return caught.value.code


@pytest.mark.parametrize("agent", [False, True])
def test_hostile_frames_deep_nesting_is_invalid_json_not_recursion_error(agent: bool) -> None:
    assert code_of(NESTED, agent) == "invalid_json"
    assert code_of(NESTED_OBJECT, agent) == "invalid_json"
    assert code_of(NESTED.encode(), agent) == "invalid_json"


def test_hostile_frames_depth_is_counted_outside_strings_only() -> None:
    brackets_in_text = json.dumps({"type": "message", "client_msg_id": "m", "text": "[{" * 500})
    assert not too_deep(brackets_in_text)
    assert parse_client_frame(brackets_in_text).type == "message"
    assert not too_deep("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert too_deep("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "hello", "last_seq": 2**63},
        {"type": "hello", "last_seq": 2**64 + 5},
        {"type": "hello", "last_seq": MAX_SAFE_INT + 1},
        {"type": "feedback", "seq": 2**63, "helpful": True},
        {"type": "feedback", "seq": -(2**70), "helpful": True},
        {"type": "csat", "score": 10**400},
        {"type": "hello", "visitor": {"n": 2**80}},
    ],
)
def test_hostile_frames_huge_numbers_are_invalid_frame(frame: dict[str, Any]) -> None:
    assert code_of(json.dumps(frame)) == "invalid_frame"


def test_hostile_frames_non_finite_and_float_sequence_numbers() -> None:
    assert code_of('{"type": "hello", "last_seq": NaN}') == "invalid_frame"
    assert code_of('{"type": "hello", "last_seq": Infinity}') == "invalid_frame"
    assert code_of('{"type": "hello", "last_seq": 1e300}') == "invalid_frame"
    assert parse_client_frame(json.dumps({"type": "hello", "last_seq": MAX_SAFE_INT})).type


def test_hostile_frames_binary_frames_parse_as_utf8_json() -> None:
    assert parse_agent_frame(b'{"type": "ping"}').type == "ping"
    assert code_of(b"\xff\xfe\x00garbage", agent=True) == "invalid_json"
    assert code_of(b"", agent=True) == "invalid_json"
    assert code_of(b"\x80") == "invalid_json"


def agent_token(server: ChildServer) -> str:
    created = subprocess.run(
        ["supportbot", "user", "add", "ana@example.com", "--role", "agent"],
        env=server.env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1].split()[-1]


HOSTILE: list[str | bytes] = [
    DEEP,
    DEEP_OBJECT,
    json.dumps({"type": "feedback", "seq": 2**63, "helpful": True}),
    json.dumps({"type": "feedback", "seq": 2**64, "helpful": False}),
    '{"type": "feedback", "seq": 1e308, "helpful": true}',
    b"\xff\xfe\xfd",
    b'{"type": "typing"}',
    "null",
    "[]",
    '"type"',
    json.dumps({"type": ["message"] * 50}),
    json.dumps({"type": "message", "client_msg_id": {"a": [1]}, "text": "x"}),
]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_hostile_frames_get_error_frames_and_no_tracebacks(tmp_path: Path) -> None:
    with ChildServer(tmp_path / "data", delay_s=0.01) as server:
        async with connect(server.url, open_timeout=10, max_size=2**20) as ws:
            welcome = await hello(ws)
            for raw in HOSTILE:
                await ws.send(raw)
                if raw == b'{"type": "typing"}':
                    continue  # a valid binary frame: accepted, no answer
                error = await recv(ws)
                assert error["type"] == "error", (raw[:80], error)
                assert error["code"] in {"invalid_json", "invalid_frame", "unknown_type"}, error
            await send(ws, {"type": "message", "client_msg_id": "m", "text": "Still there?"})
            assert (await recv(ws))["type"] == "ack"
        async with connect(server.url, open_timeout=10) as ws:
            refused = await hello(
                ws,
                conversation_id=welcome["conversation_id"],
                resume_token=welcome["resume_token"],
                last_seq=2**63,
            )
            assert refused["code"] == "invalid_frame", refused
            resumed = await hello(
                ws,
                conversation_id=welcome["conversation_id"],
                resume_token=welcome["resume_token"],
                last_seq=MAX_SAFE_INT,
            )
            assert resumed["type"] == "welcome"

        token = agent_token(server)
        url = f"ws://127.0.0.1:{server.port}/ws/agent?token={token}"
        async with connect(url, open_timeout=10, max_size=2**20) as ws:
            assert (await recv(ws))["type"] == "hello"
            for raw in [b"\x00\x01binary", b"\xff\xfe", b"", *HOSTILE]:
                await ws.send(raw)
                frame = await recv(ws)
                while frame["type"] not in ("error", "pong"):
                    frame = await recv(ws)  # a queue notice may come in between
                assert frame["type"] == "error", (raw[:80], frame)
            await ws.send(b'{"type": "ping"}')  # still open, and binary JSON works
            assert (await recv(ws))["type"] == "pong"
        log = server.log_text()
    assert "Traceback" not in log
    assert "internal_error" not in log
