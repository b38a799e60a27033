"""The frame kit both sockets are built on: one table of bad frames per socket, pinned to the
exact error frame that goes on the wire, a valid example for every member of every union, and
the kit's own guard rails (shown on a toy vocabulary)."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import pytest
from pydantic import Field

from bot.conversations import agent_frames, frames
from bot.conversations.framekit import (
    BY_TYPE,
    BaseErrorFrame,
    Direction,
    Frame,
    FrameParser,
    FrameUnion,
    ParseErrorCode,
    ProtocolError,
    members_of,
    type_of,
)

CID = "5f0c2a9e41d64c6b8f3f0e6b8a1d2c3e"
CUSTOMER_TYPES = "choose, conversations, csat, feedback, handoff_request, hello, message, typing"
AGENT_TYPES = "message, ping, typing, unwatch, watch"
NOT_JSON = "frame is not valid JSON: Expecting value: line 1 column 1 (char 0)"


def refused(parse: Callable[[str | bytes], Any], raw: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        parse(raw)
    return caught.value


def error(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "detail": detail, **extra}


# --- every way a client frame can be wrong, per socket ---------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("not json", error("invalid_json", NOT_JSON), id="malformed"),
        pytest.param("[1, 2]", error("invalid_json", "frame must be a JSON object"), id="list"),
        pytest.param("null", error("invalid_json", "frame must be a JSON object"), id="null"),
        pytest.param(
            '{"client_msg_id": "m1"}',
            error(
                "unknown_type",
                f"unknown frame type None; expected one of {CUSTOMER_TYPES}",
                client_msg_id="m1",
            ),
            id="missing-type",
        ),
        pytest.param(
            '{"type": "welcome", "client_msg_id": "m2"}',
            error(
                "unknown_type",
                f"unknown frame type 'welcome'; expected one of {CUSTOMER_TYPES}",
                client_msg_id="m2",
            ),
            id="unknown-type",
        ),
        pytest.param(
            '{"type": "csat", "score": 6, "client_msg_id": "m3"}',
            error(
                "invalid_frame",
                "invalid csat frame: score: Input should be less than or equal to 5",
                client_msg_id="m3",
            ),
            id="invalid-field",
        ),
        pytest.param(
            '{"type": "message", "client_msg_id": "m4"}',
            error(
                "invalid_frame", "invalid message frame: text: Field required", client_msg_id="m4"
            ),
            id="missing-field",
        ),
        pytest.param(
            json.dumps({"type": "message", "client_msg_id": "m5", "text": "x" * 20_001}),
            error("message_too_long", "text is too long", client_msg_id="m5"),
            id="too-long",
        ),
        pytest.param(
            json.dumps({"type": "nope", "client_msg_id": "x" * 65}),
            error("unknown_type", f"unknown frame type 'nope'; expected one of {CUSTOMER_TYPES}"),
            id="overlong-id-not-echoed",
        ),
        pytest.param(
            json.dumps({"type": "hello", "client_msg_id": "m6", "visitor": {"k": "v" * 3000}}),
            error("invalid_frame", "visitor is too large"),
            id="visitor-check",
        ),
    ],
)
def test_customer_socket_errors(raw: str, expected: dict[str, Any]) -> None:
    exc = refused(frames.parse_client_frame, raw)
    assert isinstance(exc, frames.ProtocolError)
    frame = exc.frame()
    assert isinstance(frame, frames.ErrorFrame)
    assert frame.dump() == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("not json", error("invalid_json", NOT_JSON), id="malformed"),
        pytest.param('"watch"', error("invalid_json", "frame must be a JSON object"), id="string"),
        pytest.param(
            "{}",
            error("unknown_type", f"unknown frame type None; expected one of {AGENT_TYPES}"),
            id="missing-type",
        ),
        pytest.param(
            '{"type": "claim", "client_msg_id": "m1"}',  # no echo on this socket
            error("unknown_type", f"unknown frame type 'claim'; expected one of {AGENT_TYPES}"),
            id="unknown-type",
        ),
        pytest.param(
            '{"type": "watch"}',
            error("invalid_frame", "invalid watch frame: conversation_id: Field required"),
            id="missing-field",
        ),
        pytest.param(
            json.dumps({"type": "message", "conversation_id": CID, "text": "x" * 8001}),
            error(
                "invalid_frame",
                "invalid message frame: text: String should have at most 8000 characters",
            ),
            id="too-long-is-invalid-frame",
        ),
        pytest.param(
            json.dumps({"type": "message", "conversation_id": CID, "text": " "}),
            error(
                "invalid_frame", "invalid message frame: text: Value error, text must not be blank"
            ),
            id="validator",
        ),
    ],
)
def test_agent_socket_errors(raw: str, expected: dict[str, Any]) -> None:
    exc = refused(agent_frames.parse_agent_frame, raw)
    assert isinstance(exc, agent_frames.AgentProtocolError)
    frame = exc.frame()
    assert isinstance(frame, agent_frames.AgentErrorFrame)
    assert frame.dump() == expected == agent_frames.AgentErrorFrame.of(exc).dump()


def test_bytes_that_are_not_utf8_json_are_invalid_json() -> None:
    for parse in (frames.parse_client_frame, agent_frames.parse_agent_frame):
        assert refused(parse, b"\xff\xfe").code == "invalid_json"


# --- a valid example of every member of every union -----------------------------------------

QUEUE_ITEM: dict[str, Any] = {
    "id": 12,
    "conversation_id": CID,
    "reason": "customer_request",
    "detail": None,
    "claimed_by": None,
    "created_at": "2026-11-23T14:02:11+00:00",
    "claimed_at": None,
    "closed_at": None,
}
EXAMPLES: dict[type[Frame], dict[str, Any]] = {
    frames.HelloFrame: {"type": "hello", "last_seq": 0},
    frames.ClientMessageFrame: {"type": "message", "client_msg_id": "m1", "text": "hi"},
    frames.HandoffRequestFrame: {"type": "handoff_request"},
    frames.FeedbackFrame: {"type": "feedback", "seq": 2, "helpful": True},
    frames.CsatFrame: {"type": "csat", "score": 5},
    frames.ChooseFrame: {"type": "choose", "seq": 3, "article_id": "billing/refunds"},
    frames.ClientTypingFrame: {"type": "typing"},
    frames.ConversationsRequestFrame: {"type": "conversations"},
    frames.ConversationsFrame: {
        "type": "conversations",
        "conversations": [
            {
                "conversation_id": CID,
                "resume_token": "ct1.x",
                "state": "resolved",
                "created_at": "2026-12-01T09:00:00+00:00",
                "updated_at": "2026-12-01T09:05:00+00:00",
                "last_message": "Thanks!",
            }
        ],
    },
    frames.WelcomeFrame: {
        "type": "welcome",
        "conversation_id": CID,
        "resume_token": "t",
        "state": "bot",
        "last_seq": 0,
        "resumed": False,
        "email_replies": False,
    },
    frames.AckFrame: {"type": "ack", "client_msg_id": "m1", "seq": 1, "duplicate": False},
    frames.DeltaFrame: {"type": "delta", "reply_to": 1, "text": "Re"},
    frames.MessageFrame: {"type": "message", "seq": 2, "role": "bot", "text": "Hi", "sources": []},
    frames.StateFrame: {"type": "state", "state": "human"},
    frames.TypingFrame: {"type": "typing", "role": "bot"},
    frames.ErrorFrame: error("rate_limited", "slow down", client_msg_id="m1", retry_after_ms=5),
    agent_frames.WatchFrame: {"type": "watch", "conversation_id": CID},
    agent_frames.UnwatchFrame: {"type": "unwatch", "conversation_id": CID},
    agent_frames.AgentTypingFrame: {"type": "typing", "conversation_id": CID},
    agent_frames.AgentMessageFrame: {"type": "message", "conversation_id": CID, "text": "On it"},
    agent_frames.PingFrame: {"type": "ping"},
    agent_frames.AgentHelloFrame: {"type": "hello", "agent": "ana@example.com", "queue": []},
    agent_frames.QueueFrame: {"type": "queue", "action": "added", "item": QUEUE_ITEM},
    agent_frames.ConversationFrame: {
        "type": "conversation",
        "conversation_id": CID,
        "state": "human",
    },
    agent_frames.WatchingFrame: {"type": "watching", "conversation_id": CID},
    agent_frames.PongFrame: {"type": "pong"},
    agent_frames.AgentErrorFrame: error("refused", "held by another agent"),
    agent_frames.WatchedMessageFrame: {
        "type": "message",
        "seq": 3,
        "role": "agent",
        "text": "Hi",
        "sources": [],
        "author": "Ana",
        "conversation_id": CID,
    },
    agent_frames.WatchedStateFrame: {"type": "state", "state": "bot", "conversation_id": CID},
    agent_frames.WatchedTypingFrame: {"type": "typing", "role": "customer", "conversation_id": CID},
    agent_frames.WatchedDeltaFrame: {
        "type": "delta",
        "reply_to": 1,
        "text": "Re",
        "conversation_id": CID,
    },
}
UNIONS: dict[str, FrameUnion[Any]] = {
    "customer client": frames.CLIENT,
    "customer server": frames.SERVER,
    "agent client": agent_frames.AGENT_CLIENT,
    "agent server": agent_frames.AGENT_SERVER,
    "watched": agent_frames.WATCHED,
    "agent events": agent_frames.AGENT_EVENTS,
}


@pytest.mark.parametrize("name", list(UNIONS))
def test_every_member_of_every_union_validates_and_dumps_unchanged(name: str) -> None:
    union = UNIONS[name]
    missing = [model.__name__ for model in union.members if model not in EXAMPLES]
    assert not missing, f"add an example for {missing}"
    for model in union.members:
        example = EXAMPLES[model]
        frame = union.validate(example)
        assert type(frame) is model and frame.dump() == example
        if isinstance(union, FrameParser):
            assert union.parse(json.dumps(example)) == frame


def test_the_parsers_are_the_socket_functions() -> None:
    for model in frames.CLIENT.members:
        assert type(frames.parse_client_frame(json.dumps(EXAMPLES[model]))) is model
    for model in agent_frames.AGENT_CLIENT.members:
        assert type(agent_frames.parse_agent_frame(json.dumps(EXAMPLES[model]))) is model


# --- everything is read off the unions --------------------------------------------------------


def test_types_and_codes_come_from_the_unions() -> None:
    assert {type_of(model) for model in frames.CLIENT.members} == frames.CLIENT_TYPES
    assert frames.CLIENT.members + frames.SERVER.members == frames.ALL_FRAMES
    assert set(agent_frames.WATCHED.members) < set(agent_frames.AGENT_SERVER.members)
    assert set(agent_frames.AGENT_EVENTS.members) < set(agent_frames.AGENT_SERVER.members)
    parse_codes = set(typing.get_args(ParseErrorCode))
    assert frames.ErrorFrame.codes() == set(typing.get_args(frames.ErrorCode)) > parse_codes
    agent_codes = set(typing.get_args(agent_frames.AgentErrorCode))
    assert agent_frames.AgentErrorFrame.codes() == agent_codes == parse_codes | {"refused"}


def test_a_code_the_socket_does_not_speak_becomes_invalid_frame() -> None:
    customer = frames.ProtocolError("rate_limited", "slow down", client_msg_id="m1")
    assert customer.frame().dump() == error("rate_limited", "slow down", client_msg_id="m1")
    assert agent_frames.AgentErrorFrame.of(customer).dump() == error("invalid_frame", "slow down")


# --- the kit's guard rails, on a toy vocabulary -----------------------------------------------


class ToyPing(Frame):
    direction: ClassVar[Direction] = "client"
    type: Literal["ping"] = "ping"
    note: str = Field("", max_length=3)
    client_msg_id: str | None = None


class ToyPoke(Frame):
    direction: ClassVar[Direction] = "client"
    type: Literal["poke"] = "poke"


class ToyPong(Frame):
    direction: ClassVar[Direction] = "server"
    type: Literal["pong"] = "pong"


class ToyError(BaseErrorFrame):
    code: Literal[ParseErrorCode, "note_too_long"]
    client_msg_id: str | None = None


class ToyPlainError(BaseErrorFrame):
    code: ParseErrorCode


class ToyTerseError(BaseErrorFrame):
    code: Literal["invalid_json", "unknown_type"]


class ToyProtocolError(ProtocolError):
    error_frame = ToyError


class ToyPlainProtocolError(ProtocolError):
    error_frame = ToyPlainError


class ToyTerseProtocolError(ProtocolError):
    error_frame = ToyTerseError


ToyPings = Annotated[ToyPing | ToyPoke, BY_TYPE]


def test_members_of_flattens_nested_unions() -> None:
    nested = Annotated[ToyPong | Annotated[ToyPing | ToyPoke, BY_TYPE], BY_TYPE]
    assert members_of(nested) == (ToyPong, ToyPing, ToyPoke)
    with pytest.raises(TypeError):
        members_of(ToyPing | int)


def test_a_union_goes_one_way() -> None:
    with pytest.raises(TypeError, match="one way"):
        FrameUnion(Annotated[ToyPing | ToyPong, BY_TYPE])
    with pytest.raises(TypeError, match="client frames"):
        FrameParser(Annotated[ToyPong, BY_TYPE], error=ToyProtocolError)


def test_a_parser_needs_an_error_frame_that_can_carry_its_codes() -> None:
    with pytest.raises(TypeError, match="invalid_frame"):
        FrameParser(ToyPings, error=ToyTerseProtocolError)
    with pytest.raises(TypeError, match="note_too_long"):
        FrameParser(ToyPings, error=ToyPlainProtocolError, too_long={"note": "note_too_long"})
    with pytest.raises(TypeError, match="client_msg_id"):
        FrameParser(ToyPings, error=ToyPlainProtocolError, echo_max_chars=8)


def test_a_toy_parser_speaks_like_the_sockets() -> None:
    seen: list[dict[str, Any]] = []
    parser: FrameParser[ToyPing | ToyPoke] = FrameParser(
        ToyPings,
        error=ToyProtocolError,
        echo_max_chars=4,
        too_long={"note": "note_too_long"},
        checks=[seen.append],
    )
    assert parser.types == {"ping", "poke"} and parser.direction == "client"
    assert parser.parse('{"type": "poke"}') == ToyPoke()
    assert seen == [{"type": "poke"}]  # checks see the decoded object before validation

    def wire(raw: str) -> dict[str, Any]:
        exc = refused(parser.parse, raw)
        assert isinstance(exc, ToyProtocolError)
        return exc.frame().dump()

    assert wire('{"type": "ping", "note": "long", "client_msg_id": "abcd"}') == error(
        "note_too_long", "note is too long", client_msg_id="abcd"
    )
    assert wire('{"type": "pong", "client_msg_id": "abcde"}') == error(
        "unknown_type", "unknown frame type 'pong'; expected one of ping, poke"
    )
