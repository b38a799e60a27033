"""Every frame of the agent console WebSocket (``/ws/agent``) as a pydantic model.

The agent socket's counterpart of :mod:`bot.conversations.frames` (documented in
``docs/agents.md``; a test fails when a frame type exists here but not there). The JSON on the
wire is what the console (``bot/web/static/agent.js``) and outside tools read, so a frame's shape
only ever grows optional fields.

* client -> server: ``watch``, ``unwatch``, ``typing``, ``message`` (all with a
  ``conversation_id``) and ``ping``; parsed with :func:`parse_agent_frame`, which turns every way a
  frame can be wrong into a :class:`bot.conversations.frames.ProtocolError` (``invalid_json``,
  ``unknown_type``, ``invalid_frame``). The socket answers with an ``error`` frame and stays open.
* server -> client: ``hello``, ``queue``, ``conversation``, ``watching``, ``pong``, ``error``, and
  the frames of every watched conversation (``message``, ``state``, ``typing``, ``delta``: the
  customer protocol's frames with the ``conversation_id`` they belong to added, see
  :func:`watched_frame`).

``queue`` and ``conversation`` frames are built by :mod:`bot.handoff.machine` (published to
``AGENTS_TOPIC`` after the transaction commits); :func:`agent_event_frame` reads them back.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, cast

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    field_serializer,
    field_validator,
)

from bot.conversations.frames import (
    MAX_ID_CHARS,
    ConversationState,
    DeltaFrame,
    Frame,
    MessageFrame,
    ProtocolError,
    StateFrame,
    TypingFrame,
)

MAX_REPLY_CHARS = 8000

AgentErrorCode = Literal[
    "invalid_json",  # the frame is not a JSON object
    "unknown_type",  # no or an unknown "type"
    "invalid_frame",  # a known type with missing or wrong fields (text empty or too long...)
    "refused",  # the state machine refused the request (not claimable, held by another agent...)
]
AGENT_ERROR_CODES: tuple[str, ...] = (
    "invalid_json",
    "unknown_type",
    "invalid_frame",
    "refused",
)
QueueAction = Literal["added", "claimed", "closed"]

ConversationId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


# --- payloads ---------------------------------------------------------------------------------


class QueueEntry(BaseModel):
    """One open queue item as the console lists it (``hello`` and ``GET /api/agent/queue``)."""

    id: int
    conversation_id: str
    reason: str
    detail: str | None
    state: str
    claimed_by: str | None
    contact_email: str | None
    created_at: datetime
    waiting_s: int
    last_message: str | None


class QueueItemView(BaseModel):
    """A queue item as a ``queue`` frame carries it (``claimed_by`` is the agent's user id)."""

    id: int
    conversation_id: str
    reason: str
    detail: str | None
    claimed_by: int | None
    created_at: str
    claimed_at: str | None
    closed_at: str | None


# --- client -> server -------------------------------------------------------------------------


class WatchFrame(Frame):
    """Send me this conversation's frames (answered with ``watching``)."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["watch"] = "watch"
    conversation_id: ConversationId


class UnwatchFrame(Frame):
    """Stop sending this conversation's frames."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["unwatch"] = "unwatch"
    conversation_id: ConversationId


class AgentTypingFrame(Frame):
    """The agent is typing in this conversation (relayed to the customer as ``typing``)."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["typing"] = "typing"
    conversation_id: ConversationId


class AgentMessageFrame(Frame):
    """A reply into the customer's conversation (claims it first if it is still waiting)."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["message"] = "message"
    conversation_id: ConversationId
    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text must not be blank")
        return text


class PingFrame(Frame):
    """Keep-alive; answered with ``pong``."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["ping"] = "ping"


AgentClientFrame = Annotated[
    WatchFrame | UnwatchFrame | AgentTypingFrame | AgentMessageFrame | PingFrame,
    Field(discriminator="type"),
]
AGENT_CLIENT_FRAMES: tuple[type[Frame], ...] = (
    WatchFrame,
    UnwatchFrame,
    AgentTypingFrame,
    AgentMessageFrame,
    PingFrame,
)
_client_adapter: TypeAdapter[AgentClientFrame] = TypeAdapter(AgentClientFrame)
AGENT_CLIENT_TYPES = frozenset(
    str(model.model_fields["type"].default) for model in AGENT_CLIENT_FRAMES
)


# --- server -> client: the console's own frames -----------------------------------------------


class AgentHelloFrame(Frame):
    """First frame on every socket: who is signed in and the open queue, oldest first."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["hello"] = "hello"
    agent: str
    queue: list[QueueEntry]

    @field_serializer("queue")
    def _queue(self, queue: list[QueueEntry]) -> list[dict[str, Any]]:
        return [entry.model_dump(mode="json") for entry in queue]  # nulls stay on the wire


class QueueFrame(Frame):
    """The queue changed: an item was ``added``, ``claimed`` (by ``agent``) or ``closed``
    (``why``: ``resolved`` or ``handed_back``)."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["queue"] = "queue"
    action: QueueAction
    item: QueueItemView
    agent: str | None = None
    why: str | None = None

    @field_serializer("item")
    def _item(self, item: QueueItemView) -> dict[str, Any]:
        return item.model_dump(mode="json")  # nulls stay on the wire


class ConversationFrame(Frame):
    """A conversation changed state (sent to every console, watched or not)."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["conversation"] = "conversation"
    conversation_id: str
    state: ConversationState


class WatchingFrame(Frame):
    """Answer to ``watch``: this conversation's frames now arrive on this socket."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["watching"] = "watching"
    conversation_id: str


class PongFrame(Frame):
    """Answer to ``ping``."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["pong"] = "pong"


class AgentErrorFrame(Frame):
    """A client frame was refused; the socket stays open."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["error"] = "error"
    code: AgentErrorCode
    detail: str

    @classmethod
    def of(cls, exc: ProtocolError) -> AgentErrorFrame:
        code = exc.code if exc.code in AGENT_ERROR_CODES else "invalid_frame"
        return cls(code=cast(AgentErrorCode, code), detail=exc.detail)


# --- server -> client: frames of a watched conversation ---------------------------------------


class WatchedMessageFrame(MessageFrame):
    """A stored message of a watched conversation (customer, bot, agent or system)."""

    conversation_id: str


class WatchedStateFrame(StateFrame):
    """A watched conversation changed state."""

    conversation_id: str


class WatchedTypingFrame(TypingFrame):
    """Someone is typing in a watched conversation (the customer, or the bot retrieving; an
    agent's own typing is not echoed back to the consoles)."""

    conversation_id: str


class WatchedDeltaFrame(DeltaFrame):
    """A piece of a bot answer streaming in a watched conversation (the ``message`` follows)."""

    conversation_id: str


WatchedFrame = Annotated[
    WatchedMessageFrame | WatchedStateFrame | WatchedTypingFrame | WatchedDeltaFrame,
    Field(discriminator="type"),
]
WATCHED_FRAMES: tuple[type[Frame], ...] = (
    WatchedMessageFrame,
    WatchedStateFrame,
    WatchedTypingFrame,
    WatchedDeltaFrame,
)
_watched_adapter: TypeAdapter[WatchedFrame] = TypeAdapter(WatchedFrame)

AgentEventFrame = Annotated[QueueFrame | ConversationFrame, Field(discriminator="type")]
_event_adapter: TypeAdapter[AgentEventFrame] = TypeAdapter(AgentEventFrame)

AgentServerFrame = Annotated[
    AgentHelloFrame
    | QueueFrame
    | ConversationFrame
    | WatchingFrame
    | PongFrame
    | AgentErrorFrame
    | WatchedMessageFrame
    | WatchedStateFrame
    | WatchedTypingFrame
    | WatchedDeltaFrame,
    Field(discriminator="type"),
]
AGENT_SERVER_FRAMES: tuple[type[Frame], ...] = (
    AgentHelloFrame,
    QueueFrame,
    ConversationFrame,
    WatchingFrame,
    PongFrame,
    AgentErrorFrame,
    *WATCHED_FRAMES,
)
_server_adapter: TypeAdapter[AgentServerFrame] = TypeAdapter(AgentServerFrame)
ALL_AGENT_FRAMES: tuple[type[Frame], ...] = AGENT_CLIENT_FRAMES + AGENT_SERVER_FRAMES


# --- parsing ----------------------------------------------------------------------------------


def parse_agent_frame(raw: str | bytes) -> AgentClientFrame:
    """Parse one console frame, or raise :class:`ProtocolError` saying precisely what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("invalid_json", f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_json", "frame must be a JSON object")
    frame_type = data.get("type")
    if not isinstance(frame_type, str) or frame_type not in AGENT_CLIENT_TYPES:
        known = ", ".join(sorted(AGENT_CLIENT_TYPES))
        raise ProtocolError(
            "unknown_type", f"unknown frame type {frame_type!r}; expected one of {known}"
        )
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'frame'}: {error['msg']}"
            for error in exc.errors(include_url=False)
        )
        raise ProtocolError("invalid_frame", f"invalid {frame_type} frame: {problems}") from None


def watched_frame(payload: dict[str, Any], conversation_id: str) -> WatchedFrame:
    """A conversation-topic frame as a watching console gets it: ``conversation_id`` added.

    Raises :class:`pydantic.ValidationError` for a payload that is not a watched frame type.
    """
    return _watched_adapter.validate_python({**payload, "conversation_id": conversation_id})


def agent_event_frame(payload: dict[str, Any]) -> AgentEventFrame:
    """A payload of ``AGENTS_TOPIC`` (``queue`` or ``conversation``) as its model.

    Raises :class:`pydantic.ValidationError` for anything else.
    """
    return _event_adapter.validate_python(payload)


def parse_agent_server_frame(data: dict[str, Any]) -> AgentServerFrame:
    """Validate a server frame (tests and Python clients use this)."""
    return _server_adapter.validate_python(data)
