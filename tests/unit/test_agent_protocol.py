"""The /ws/agent frame vocabulary: parsing, error codes, and the exact JSON the server sends.

The console (bot/web/static/agent.js) and the integration tests read these bytes, so the dumps are
pinned field by field, nulls included where the wire has them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from bot.conversations.agent_frames import (
    AGENT_CLIENT_TYPES,
    ALL_AGENT_FRAMES,
    AgentErrorFrame,
    AgentHelloFrame,
    AgentMessageFrame,
    AgentProtocolError,
    AgentTypingFrame,
    ConversationFrame,
    PingFrame,
    PongFrame,
    QueueEntry,
    QueueFrame,
    QueueItemView,
    UnwatchFrame,
    WatchedMessageFrame,
    WatchedTypingFrame,
    WatchFrame,
    WatchingFrame,
    agent_event_frame,
    parse_agent_frame,
    parse_agent_server_frame,
    watched_frame,
)
from bot.conversations.frames import (
    DeltaFrame,
    MessageFrame,
    ProtocolError,
    StateFrame,
    TypingFrame,
)

CID = "5f0c2a9e41d64c6b8f3f0e6b8a1d2c3e"


def error_of(raw: str | bytes) -> AgentProtocolError:
    with pytest.raises(AgentProtocolError) as caught:
        parse_agent_frame(raw)
    return caught.value


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "watch", "conversation_id": CID}, WatchFrame(conversation_id=CID)),
        ({"type": "unwatch", "conversation_id": CID}, UnwatchFrame(conversation_id=CID)),
        ({"type": "typing", "conversation_id": CID}, AgentTypingFrame(conversation_id=CID)),
        (
            {"type": "message", "conversation_id": CID, "text": "Found it"},
            AgentMessageFrame(conversation_id=CID, text="Found it"),
        ),
        ({"type": "ping"}, PingFrame()),
        ({"type": "ping", "conversation_id": CID, "extra": 1}, PingFrame()),  # extras ignored
    ],
)
def test_parses_every_client_frame(raw: dict[str, Any], expected: Any) -> None:
    frame = parse_agent_frame(json.dumps(raw))
    assert frame == expected and type(frame) is type(expected)


def test_bytes_are_accepted() -> None:
    assert parse_agent_frame(b'{"type": "ping"}') == PingFrame()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ("", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ("null", "invalid_json"),
        ('"watch"', "invalid_json"),
        ("{}", "unknown_type"),
        ('{"type": null}', "unknown_type"),
        ('{"type": 3}', "unknown_type"),
        ('{"type": "hello"}', "unknown_type"),  # a server frame type, not a client one
        ('{"type": "claim", "conversation_id": "c"}', "unknown_type"),
        ('{"type": "watch"}', "invalid_frame"),
        ('{"type": "watch", "conversation_id": ""}', "invalid_frame"),
        ('{"type": "watch", "conversation_id": 12}', "invalid_frame"),
        ('{"type": "unwatch", "conversation_id": null}', "invalid_frame"),
        ('{"type": "typing"}', "invalid_frame"),
        ('{"type": "message", "conversation_id": "c"}', "invalid_frame"),
        ('{"type": "message", "conversation_id": "c", "text": ""}', "invalid_frame"),
        ('{"type": "message", "conversation_id": "c", "text": "   \\n"}', "invalid_frame"),
        ('{"type": "message", "text": "hi"}', "invalid_frame"),
    ],
)
def test_error_codes(raw: str | bytes, code: str) -> None:
    assert error_of(raw).code == code


def test_conversation_id_is_bounded() -> None:
    assert error_of(json.dumps({"type": "watch", "conversation_id": "x" * 65})).code == (
        "invalid_frame"
    )
    assert parse_agent_frame(json.dumps({"type": "watch", "conversation_id": "x" * 64}))


def test_message_text_limit_is_8000_characters() -> None:
    ok = {"type": "message", "conversation_id": CID, "text": "a" * 8000}
    assert isinstance(parse_agent_frame(json.dumps(ok)), AgentMessageFrame)
    error = error_of(json.dumps({**ok, "text": "a" * 8001}))
    assert error.code == "invalid_frame" and "text" in error.detail


def test_details_say_what_is_wrong() -> None:
    unknown = error_of('{"type": "claim"}')
    assert "'claim'" in unknown.detail and "watch" in unknown.detail
    missing = error_of('{"type": "watch"}')
    assert "watch" in missing.detail and "conversation_id" in missing.detail


def test_parse_errors_become_error_frames() -> None:
    frame = AgentErrorFrame.of(error_of("nope"))
    assert frame.dump()["type"] == "error" and frame.code == "invalid_json"
    assert error_of("nope").frame() == frame  # the error knows its socket's error frame
    # A customer-protocol code this socket does not use falls back to invalid_frame.
    assert AgentErrorFrame.of(ProtocolError("rate_limited", "slow down")).code == "invalid_frame"


def test_client_types() -> None:
    assert {"watch", "unwatch", "typing", "message", "ping"} == AGENT_CLIENT_TYPES


# --- what the server sends (the wire is pinned) -----------------------------------------------


def item_view(**changes: Any) -> QueueItemView:
    base: dict[str, Any] = {
        "id": 12,
        "conversation_id": CID,
        "reason": "customer_request",
        "detail": None,
        "claimed_by": None,
        "created_at": "2026-11-23T14:02:11.203000+00:00",
        "claimed_at": None,
        "closed_at": None,
    }
    return QueueItemView(**{**base, **changes})


def test_queue_frames_keep_nulls_in_the_item_and_omit_unset_extras() -> None:
    added = QueueFrame(action="added", item=item_view()).dump()
    assert added == {
        "type": "queue",
        "action": "added",
        "item": {
            "id": 12,
            "conversation_id": CID,
            "reason": "customer_request",
            "detail": None,
            "claimed_by": None,
            "created_at": "2026-11-23T14:02:11.203000+00:00",
            "claimed_at": None,
            "closed_at": None,
        },
    }
    claimed = QueueFrame(action="claimed", item=item_view(claimed_by=3), agent="a@x.io").dump()
    assert claimed["agent"] == "a@x.io" and "why" not in claimed
    closed = QueueFrame(action="closed", item=item_view(), why="resolved").dump()
    assert closed["why"] == "resolved" and "agent" not in closed
    for frame in (added, claimed, closed):
        assert agent_event_frame(frame).dump() == frame


def test_conversation_frame() -> None:
    frame = ConversationFrame(conversation_id=CID, state="human").dump()
    assert frame == {"type": "conversation", "conversation_id": CID, "state": "human"}
    assert agent_event_frame(frame) == ConversationFrame(conversation_id=CID, state="human")
    with pytest.raises(ValidationError):
        agent_event_frame({"type": "conversation", "conversation_id": CID, "state": "gone"})
    with pytest.raises(ValidationError):
        agent_event_frame({"type": "pong"})


def test_hello_keeps_nulls_in_queue_entries() -> None:
    entry = QueueEntry(
        id=1,
        conversation_id=CID,
        reason="no_knowledge",
        detail=None,
        state="awaiting_human",
        claimed_by=None,
        contact_email=None,
        created_at=datetime(2026, 11, 23, 14, 2, 11, tzinfo=UTC),
        waiting_s=94,
        last_message=None,
    )
    assert AgentHelloFrame(agent="ana@example.com", queue=[entry]).dump() == {
        "type": "hello",
        "agent": "ana@example.com",
        "queue": [
            {
                "id": 1,
                "conversation_id": CID,
                "reason": "no_knowledge",
                "detail": None,
                "state": "awaiting_human",
                "claimed_by": None,
                "contact_email": None,
                "created_at": "2026-11-23T14:02:11Z",
                "waiting_s": 94,
                "last_message": None,
            }
        ],
    }
    assert AgentHelloFrame(agent="a@x.io", queue=[]).dump() == {
        "type": "hello",
        "agent": "a@x.io",
        "queue": [],
    }


def test_small_server_frames() -> None:
    assert WatchingFrame(conversation_id=CID).dump() == {"type": "watching", "conversation_id": CID}
    assert PongFrame().dump() == {"type": "pong"}
    assert AgentErrorFrame(code="refused", detail="no").dump() == {
        "type": "error",
        "code": "refused",
        "detail": "no",
    }


@pytest.mark.parametrize(
    "payload",
    [
        MessageFrame(
            seq=2,
            role="bot",
            text="Refunds take 5 days.",
            sources=[{"article_id": "returns/refunds", "title": "Refunds", "score": 0.8}],
            reply_to=1,
            created_at="2026-11-23T14:02:11+00:00",
        ).dump(),
        MessageFrame(seq=3, role="agent", text="Hi", author="Ana").dump(),
        StateFrame(state="awaiting_human", reason="low_confidence").dump(),
        StateFrame(state="bot").dump(),
        TypingFrame(role="customer").dump(),
        DeltaFrame(reply_to=1, text="Refu").dump(),
    ],
)
def test_watched_frames_are_the_conversation_frame_plus_its_id(payload: dict[str, Any]) -> None:
    forwarded = watched_frame(payload, CID).dump()
    assert forwarded == {**payload, "conversation_id": CID}
    assert list(forwarded) == [*payload, "conversation_id"]  # same key order as before
    assert parse_agent_server_frame(forwarded).dump() == forwarded


def test_watched_frame_types() -> None:
    assert isinstance(watched_frame(TypingFrame(role="agent").dump(), CID), WatchedTypingFrame)
    message = watched_frame(MessageFrame(seq=1, role="customer", text="x").dump(), CID)
    assert isinstance(message, WatchedMessageFrame) and message.conversation_id == CID
    with pytest.raises(ValidationError):  # not a frame a conversation topic carries
        watched_frame({"type": "ack", "client_msg_id": "m", "seq": 1}, CID)


def test_every_frame_type_is_unique_per_direction() -> None:
    seen = [(m.direction, str(m.model_fields["type"].default)) for m in ALL_AGENT_FRAMES]
    assert len(seen) == len(set(seen))
