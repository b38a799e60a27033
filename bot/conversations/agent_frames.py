"""Every frame of the agent console WebSocket (``/ws/agent``) as a pydantic model.

The agent socket's counterpart of :mod:`bot.conversations.frames` (documented in
``docs/agents.md``; a test fails when a frame type exists here but not there). The JSON on the
wire is what the console (``bot/web/static/agent.js``) and outside tools read, so a frame's shape
only ever grows optional fields.

* client -> server: ``watch``, ``unwatch``, ``typing``, ``message`` (all with a
  ``conversation_id``) and ``ping``; parsed with :func:`parse_agent_frame`, which turns every way a
  frame can be wrong into an :class:`AgentProtocolError` (``invalid_json``, ``unknown_type``,
  ``invalid_frame``). The socket answers with an ``error`` frame and stays open.
* server -> client: ``hello``, ``queue``, ``conversation``, ``watching``, ``pong``, ``error``, and
  the frames of every watched conversation (``message``, ``state``, ``typing``, ``delta``: the
  customer protocol's frames with the ``conversation_id`` they belong to added, see
  :func:`watched_frame`).

``queue`` and ``conversation`` frames are built by :mod:`bot.handoff.machine` (published to
``AGENTS_TOPIC`` after the transaction commits); :func:`agent_event_frame` reads them back.

Parsing and the union bookkeeping are the frame kit's (:mod:`bot.conversations.framekit`), the
same the customer socket is built on; each union here is written once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_serializer, field_validator

from bot.conversations.framekit import (
    BY_TYPE,
    BaseErrorFrame,
    Direction,
    Frame,
    FrameParser,
    FrameUnion,
    ParseErrorCode,
)
from bot.conversations.framekit import (
    ProtocolError as ProtocolError,  # re-exported: what the agent session catches
)
from bot.conversations.frames import (
    MAX_ID_CHARS,
    ConversationState,
    DeltaFrame,
    MessageFrame,
    StateFrame,
    TypingFrame,
)

MAX_REPLY_CHARS = 8000

AgentErrorCode = Literal[
    ParseErrorCode,  # invalid_json, unknown_type, invalid_frame (text empty or too long...)
    "refused",  # the state machine refused the request (not claimable, held by another agent...)
]
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

    direction: ClassVar[Direction] = "client"
    type: Literal["watch"] = "watch"
    conversation_id: ConversationId


class UnwatchFrame(Frame):
    """Stop sending this conversation's frames."""

    direction: ClassVar[Direction] = "client"
    type: Literal["unwatch"] = "unwatch"
    conversation_id: ConversationId


class AgentTypingFrame(Frame):
    """The agent is typing in this conversation (relayed to the customer as ``typing``)."""

    direction: ClassVar[Direction] = "client"
    type: Literal["typing"] = "typing"
    conversation_id: ConversationId


class AgentMessageFrame(Frame):
    """A reply into the customer's conversation (claims it first if it is still waiting)."""

    direction: ClassVar[Direction] = "client"
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

    direction: ClassVar[Direction] = "client"
    type: Literal["ping"] = "ping"


AgentClientFrame = Annotated[
    WatchFrame | UnwatchFrame | AgentTypingFrame | AgentMessageFrame | PingFrame,
    BY_TYPE,
]


# --- server -> client: the console's own frames -----------------------------------------------


class AgentHelloFrame(Frame):
    """First frame on every socket: who is signed in and the open queue, oldest first."""

    direction: ClassVar[Direction] = "server"
    type: Literal["hello"] = "hello"
    agent: str
    queue: list[QueueEntry]

    @field_serializer("queue")
    def _queue(self, queue: list[QueueEntry]) -> list[dict[str, Any]]:
        return [entry.model_dump(mode="json") for entry in queue]  # nulls stay on the wire


class QueueFrame(Frame):
    """The queue changed: an item was ``added``, ``claimed`` (by ``agent``) or ``closed``
    (``why``: ``resolved`` or ``handed_back``)."""

    direction: ClassVar[Direction] = "server"
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

    direction: ClassVar[Direction] = "server"
    type: Literal["conversation"] = "conversation"
    conversation_id: str
    state: ConversationState


class WatchingFrame(Frame):
    """Answer to ``watch``: this conversation's frames now arrive on this socket."""

    direction: ClassVar[Direction] = "server"
    type: Literal["watching"] = "watching"
    conversation_id: str


class PongFrame(Frame):
    """Answer to ``ping``."""

    direction: ClassVar[Direction] = "server"
    type: Literal["pong"] = "pong"


class AgentErrorFrame(BaseErrorFrame):
    """A client frame was refused; the socket stays open. ``AgentErrorFrame.of(exc)`` turns any
    :class:`ProtocolError` into one (a code this socket does not speak becomes invalid_frame)."""

    code: AgentErrorCode


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
    BY_TYPE,
]
AgentEventFrame = Annotated[QueueFrame | ConversationFrame, BY_TYPE]
AgentServerFrame = Annotated[
    AgentHelloFrame | AgentEventFrame | WatchingFrame | PongFrame | AgentErrorFrame | WatchedFrame,
    BY_TYPE,
]


# --- parsing ----------------------------------------------------------------------------------


class AgentProtocolError(ProtocolError):
    """A console frame that cannot be processed; becomes an :class:`AgentErrorFrame`."""

    error_frame = AgentErrorFrame


AGENT_CLIENT: FrameParser[AgentClientFrame] = FrameParser(
    AgentClientFrame, error=AgentProtocolError
)
AGENT_SERVER: FrameUnion[AgentServerFrame] = FrameUnion(AgentServerFrame)
WATCHED: FrameUnion[WatchedFrame] = FrameUnion(WatchedFrame)
AGENT_EVENTS: FrameUnion[AgentEventFrame] = FrameUnion(AgentEventFrame)
AGENT_CLIENT_TYPES = AGENT_CLIENT.types
ALL_AGENT_FRAMES: tuple[type[Frame], ...] = AGENT_CLIENT.members + AGENT_SERVER.members


def parse_agent_frame(raw: str | bytes) -> AgentClientFrame:
    """Parse one console frame, or raise :class:`AgentProtocolError` saying precisely what is
    wrong."""
    return AGENT_CLIENT.parse(raw)


def watched_frame(payload: dict[str, Any], conversation_id: str) -> WatchedFrame:
    """A conversation-topic frame as a watching console gets it: ``conversation_id`` added.

    Raises :class:`pydantic.ValidationError` for a payload that is not a watched frame type.
    """
    return WATCHED.validate({**payload, "conversation_id": conversation_id})


def agent_event_frame(payload: dict[str, Any]) -> AgentEventFrame:
    """A payload of ``AGENTS_TOPIC`` (``queue`` or ``conversation``) as its model.

    Raises :class:`pydantic.ValidationError` for anything else.
    """
    return AGENT_EVENTS.validate(payload)


def parse_agent_server_frame(data: dict[str, Any]) -> AgentServerFrame:
    """Validate a server frame (tests and Python clients use this)."""
    return AGENT_SERVER.validate(data)
