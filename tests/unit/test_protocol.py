"""The chat frame vocabulary: parsing, error codes, and the frames the server builds."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bot.conversations.frames import (
    ALL_FRAMES,
    CLIENT_TYPES,
    AckFrame,
    ChooseFrame,
    ClientMessageFrame,
    CsatFrame,
    ErrorFrame,
    FeedbackFrame,
    HelloFrame,
    MessageFrame,
    ProtocolError,
    StateFrame,
    parse_client_frame,
    parse_server_frame,
)
from bot.core.models import Message


def error_code(raw: str | bytes) -> str:
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame(raw)
    return caught.value.code


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ("null", "invalid_json"),
        ("{}", "unknown_type"),
        ('{"type": "welcome"}', "unknown_type"),  # a server frame sent by a client
        ('{"type": 3}', "unknown_type"),
        ('{"type": "message", "text": "hi"}', "invalid_frame"),
        ('{"type": "message", "client_msg_id": "a", "text": ""}', "invalid_frame"),
        ('{"type": "feedback", "seq": 0, "helpful": true}', "invalid_frame"),
        ('{"type": "csat", "score": 6}', "invalid_frame"),
        ('{"type": "choose", "seq": 2}', "invalid_frame"),  # article_id is required (or null)
        ('{"type": "choose", "seq": 0, "article_id": "a"}', "invalid_frame"),
        ('{"type": "choose", "seq": 2, "article_id": ""}', "invalid_frame"),
        ('{"type": "hello", "last_seq": -1}', "invalid_frame"),
        ('{"type": "hello", "locale": "not a tag"}', "invalid_frame"),
        ('{"type": "hello", "user": {"name": "no id"}}', "invalid_frame"),
        ('{"type": "hello", "visitor": {"k": "' + "v" * 3000 + '"}}', "invalid_frame"),
        (
            json.dumps({"type": "message", "client_msg_id": "a", "text": "x" * 20_001}),
            "message_too_long",
        ),
    ],
)
def test_bad_frames_get_precise_codes(raw: str | bytes, code: str) -> None:
    assert error_code(raw) == code


def test_error_frame_names_the_client_msg_id_when_it_can() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_client_frame('{"type": "message", "client_msg_id": "m7"}')
    frame = caught.value.frame().dump()
    assert frame["type"] == "error" and frame["client_msg_id"] == "m7"
    assert "text" in frame["detail"]


def test_client_frames_parse_to_their_models() -> None:
    assert parse_client_frame('{"type": "hello"}') == HelloFrame()
    message = parse_client_frame('{"type": "message", "client_msg_id": "a", "text": "hi", "x": 1}')
    assert message == ClientMessageFrame(client_msg_id="a", text="hi")  # unknown fields ignored
    assert parse_client_frame('{"type": "feedback", "seq": 4, "helpful": false}') == FeedbackFrame(
        seq=4, helpful=False
    )
    assert parse_client_frame('{"type": "csat", "score": 5}') == CsatFrame(score=5)
    assert parse_client_frame('{"type": "choose", "seq": 2, "article_id": null}') == ChooseFrame(
        seq=2, article_id=None
    )
    assert {
        "hello",
        "message",
        "handoff_request",
        "feedback",
        "csat",
        "choose",
        "typing",
        "conversations",
    } == CLIENT_TYPES


def test_every_frame_has_a_type_literal_and_a_direction() -> None:
    for model in ALL_FRAMES:
        assert model.direction in ("client", "server")
        assert isinstance(model.model_fields["type"].default, str)


def test_message_frame_from_a_stored_row_is_utc_and_carries_sources() -> None:
    row = Message(
        conversation_id="c",
        seq=3,
        role="bot",
        text="Refunds take 5 days.",
        reply_to=2,
        sources=[{"article_id": "returns/refunds", "title": "Refunds", "url": None, "score": 0.8}],
        created_at=datetime(2026, 1, 2, 3, 4, 5),  # naive, as SQLite returns it
    )
    frame = MessageFrame.from_message(row).dump()
    assert frame["created_at"] == "2026-01-02T03:04:05+00:00"
    assert frame["sources"][0]["article_id"] == "returns/refunds"
    assert frame["reply_to"] == 2 and "author" not in frame  # unset optionals are left out
    assert parse_server_frame(frame) == MessageFrame.from_message(row)


def test_server_frames_round_trip() -> None:
    for frame in (
        AckFrame(client_msg_id="a", seq=1),
        StateFrame(state="awaiting_human", reason="customer_request"),
        ErrorFrame(code="rate_limited", detail="slow down", retry_after_ms=500),
    ):
        assert parse_server_frame(json.loads(json.dumps(frame.dump()))) == frame
