"""Every frame of the customer chat WebSocket (``/ws/chat``) as a pydantic model.

The frame vocabulary is a public contract (docs/protocol.md): outside widgets and
mobile apps speak it, so a frame's shape only ever grows optional fields. Client frames are parsed
with :func:`parse_client_frame`, which turns every way a frame can be wrong into a
:class:`ProtocolError` with a stable ``code``; the socket answers with an :class:`ErrorFrame` and
stays open. Server frames are built here too (``MessageFrame.from_message``) so the chat socket,
the handoff module and the agent API all put the same bytes on the wire.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bot.core.schemas import Source

if TYPE_CHECKING:
    from bot.core.models import Message

# Hard ceilings that hold whatever the settings say; the configurable (lower) limits are
# enforced by the chat socket (bot/live/customer.py).
MAX_ID_CHARS = 64
MAX_TOKEN_CHARS = 128
MAX_TEXT_CHARS = 20_000
MAX_COMMENT_CHARS = 2_000
MAX_VISITOR_KEYS = 20
MAX_VISITOR_JSON_CHARS = 2_000

Role = Literal["customer", "bot", "agent", "system"]
ConversationState = Literal["bot", "awaiting_human", "human", "resolved"]

ErrorCode = Literal[
    "invalid_json",  # the frame is not a JSON object
    "unknown_type",  # no or an unknown "type"
    "invalid_frame",  # a known type with missing or wrong fields
    "message_too_long",  # text longer than the configured maximum
    "rate_limited",  # too many frames or messages; retry after retry_after_ms
    "hello_required",  # a frame other than hello before the conversation is open
    "already_open",  # a second hello on the same socket
    "resume_failed",  # unknown conversation, wrong token, or resume window passed
    "unknown_message",  # feedback on a seq that is not a bot message of this conversation
    "internal_error",  # the server failed; the frame was not processed, resend it
    "frame_too_large",  # sent just before the 1009 close
]

# WebSocket close codes the server uses (RFC 6455 section 7.4.1).
CLOSE_POLICY_VIOLATION = 1008  # origin not allowed (sent as HTTP 403 before accept)
CLOSE_MESSAGE_TOO_BIG = 1009  # frame larger than the maximum frame size
CLOSE_GOING_AWAY = 1001  # server shutting down


class Frame(BaseModel):
    """Base of every frame: a JSON object with a ``type``. Unknown fields are ignored so old
    servers accept frames from newer clients."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    direction: ClassVar[Literal["client", "server"]]

    def dump(self) -> dict[str, Any]:
        """The JSON-ready dict that goes on the wire (optional fields left out when unset)."""
        return self.model_dump(mode="json", exclude_none=True)


# --- client -> server -----------------------------------------------------------------------


class HelloFrame(Frame):
    """Opens (or resumes) a conversation; must be the first frame on a socket."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["hello"] = "hello"
    conversation_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    resume_token: str | None = Field(None, min_length=1, max_length=MAX_TOKEN_CHARS)
    last_seq: int = Field(0, ge=0)
    visitor: dict[str, str | int | float | bool | None] | None = Field(
        None, max_length=MAX_VISITOR_KEYS
    )


class ClientMessageFrame(Frame):
    """A customer message; ``client_msg_id`` makes resends idempotent."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["message"] = "message"
    client_msg_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class HandoffRequestFrame(Frame):
    """The customer asks for a person."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["handoff_request"] = "handoff_request"
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)


class FeedbackFrame(Frame):
    """Was the bot message ``seq`` helpful? The last answer per message counts."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["feedback"] = "feedback"
    seq: int = Field(ge=1)
    helpful: bool
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)


class CsatFrame(Frame):
    """Customer satisfaction for the conversation, 1 (bad) to 5 (great)."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["csat"] = "csat"
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)


class ClientTypingFrame(Frame):
    """The customer is typing (shown to an agent who holds the conversation)."""

    direction: ClassVar[Literal["client", "server"]] = "client"
    type: Literal["typing"] = "typing"


ClientFrame = Annotated[
    HelloFrame
    | ClientMessageFrame
    | HandoffRequestFrame
    | FeedbackFrame
    | CsatFrame
    | ClientTypingFrame,
    Field(discriminator="type"),
]
CLIENT_FRAMES: tuple[type[Frame], ...] = (
    HelloFrame,
    ClientMessageFrame,
    HandoffRequestFrame,
    FeedbackFrame,
    CsatFrame,
    ClientTypingFrame,
)
_client_adapter: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)
CLIENT_TYPES = frozenset(str(model.model_fields["type"].default) for model in CLIENT_FRAMES)


# --- server -> client -----------------------------------------------------------------------


class WelcomeFrame(Frame):
    """Answer to hello: the conversation is open. Keep ``resume_token`` to reconnect."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["welcome"] = "welcome"
    conversation_id: str
    resume_token: str
    state: ConversationState
    last_seq: int = Field(0, ge=0, description="Highest seq stored in the conversation.")
    resumed: bool = False


class AckFrame(Frame):
    """The customer message ``client_msg_id`` is stored (committed) as ``seq``."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["ack"] = "ack"
    client_msg_id: str
    seq: int = Field(ge=1)
    duplicate: bool = Field(False, description="True when this was a resend of a stored message.")


class DeltaFrame(Frame):
    """A piece of the bot answer to message ``reply_to`` while it streams. A preview only: the
    following ``message`` frame carries the full stored text."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["delta"] = "delta"
    reply_to: int = Field(ge=1)
    text: str


class MessageFrame(Frame):
    """A stored message of the conversation, live or replayed on resume."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["message"] = "message"
    seq: int = Field(ge=1)
    role: Role
    text: str
    sources: list[Source] = Field(default_factory=list)
    author: str | None = None
    reply_to: int | None = None
    client_msg_id: str | None = None
    created_at: str | None = None

    @classmethod
    def from_message(cls, message: Message) -> MessageFrame:
        """The frame for a stored ``bot.core.models.Message`` row."""
        created = message.created_at
        if created is not None and created.tzinfo is None:  # SQLite drops the offset; it is UTC
            created = created.replace(tzinfo=UTC)
        return cls(
            seq=message.seq,
            role=message.role,
            text=message.text,
            sources=[Source.model_validate(source) for source in message.sources or []],
            author=message.author,
            reply_to=message.reply_to,
            client_msg_id=message.client_msg_id,
            created_at=created.isoformat() if created is not None else None,
        )


class StateFrame(Frame):
    """The conversation changed state (bot -> awaiting_human -> human -> resolved)."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["state"] = "state"
    state: ConversationState
    reason: str | None = None


class TypingFrame(Frame):
    """Someone is composing: the bot while it retrieves, an agent, or (to agents) the customer."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["typing"] = "typing"
    role: Role


class ErrorFrame(Frame):
    """A frame was refused. The socket stays open unless a close follows."""

    direction: ClassVar[Literal["client", "server"]] = "server"
    type: Literal["error"] = "error"
    code: ErrorCode
    detail: str
    client_msg_id: str | None = None
    retry_after_ms: int | None = None


ServerFrame = Annotated[
    WelcomeFrame | AckFrame | DeltaFrame | MessageFrame | StateFrame | TypingFrame | ErrorFrame,
    Field(discriminator="type"),
]
SERVER_FRAMES: tuple[type[Frame], ...] = (
    WelcomeFrame,
    AckFrame,
    DeltaFrame,
    MessageFrame,
    StateFrame,
    TypingFrame,
    ErrorFrame,
)
_server_adapter: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
ALL_FRAMES: tuple[type[Frame], ...] = CLIENT_FRAMES + SERVER_FRAMES


# --- parsing --------------------------------------------------------------------------------


class ProtocolError(Exception):
    """A client frame that cannot be processed; becomes an ``error`` frame."""

    def __init__(self, code: ErrorCode, detail: str, *, client_msg_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code: ErrorCode = code
        self.detail = detail
        self.client_msg_id = client_msg_id

    def frame(self) -> ErrorFrame:
        return ErrorFrame(code=self.code, detail=self.detail, client_msg_id=self.client_msg_id)


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Parse one client frame, or raise :class:`ProtocolError` saying precisely what is wrong."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("invalid_json", f"frame is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_json", "frame must be a JSON object")
    frame_type = data.get("type")
    client_msg_id = data.get("client_msg_id")
    ref = client_msg_id if isinstance(client_msg_id, str) and len(client_msg_id) <= 64 else None
    if not isinstance(frame_type, str) or frame_type not in CLIENT_TYPES:
        known = ", ".join(sorted(CLIENT_TYPES))
        raise ProtocolError(
            "unknown_type",
            f"unknown frame type {frame_type!r}; expected one of {known}",
            client_msg_id=ref,
        )
    visitor = data.get("visitor")
    if isinstance(visitor, dict) and len(json.dumps(visitor)) > MAX_VISITOR_JSON_CHARS:
        raise ProtocolError("invalid_frame", "visitor is too large")
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if any(e["type"] == "string_too_long" and e["loc"][1:] == ("text",) for e in errors):
            raise ProtocolError("message_too_long", "text is too long", client_msg_id=ref) from None
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'frame'}: {error['msg']}"
            for error in errors
        )
        raise ProtocolError(
            "invalid_frame", f"invalid {frame_type} frame: {problems}", client_msg_id=ref
        ) from None


def parse_server_frame(data: dict[str, Any]) -> ServerFrame:
    """Validate a server frame (tests and the Python client use this)."""
    return _server_adapter.validate_python(data)
