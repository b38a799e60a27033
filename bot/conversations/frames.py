"""Every frame of the customer chat WebSocket (``/ws/chat``) as a pydantic model.

The frame vocabulary is a public contract (docs/protocol.md): outside widgets and
mobile apps speak it, so a frame's shape only ever grows optional fields. Client frames are parsed
with :func:`parse_client_frame`, which turns every way a frame can be wrong into a
:class:`ProtocolError` with a stable ``code``; the socket answers with an :class:`ErrorFrame` and
stays open. Server frames are built here too (``MessageFrame.from_message``) so the chat socket,
the handoff module and the agent API all put the same bytes on the wire.

The parsing, the error frame's base and the union bookkeeping are the frame kit's
(:mod:`bot.conversations.framekit`), shared with the agent socket; what is written here is only
this socket's vocabulary, each union once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.conversations.framekit import (
    BY_TYPE,
    MAX_SAFE_INT,
    BaseErrorFrame,
    Direction,
    FrameParser,
    FrameUnion,
    ParseErrorCode,
)
from bot.conversations.framekit import (
    Frame as Frame,  # re-exported: the sessions build frames from this module
)
from bot.conversations.framekit import ProtocolError as _KitProtocolError
from bot.core.clock import aware
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
MAX_ARTICLE_ID_CHARS = 200  # article ids are paths under the articles folder

Role = Literal["customer", "bot", "agent", "system"]
ConversationState = Literal["bot", "awaiting_human", "human", "resolved"]

ErrorCode = Literal[
    ParseErrorCode,  # invalid_json, unknown_type, invalid_frame: see bot.conversations.framekit
    "message_too_long",  # text longer than the configured maximum
    "rate_limited",  # too many frames or messages; retry after retry_after_ms
    "hello_required",  # a frame other than hello before the conversation is open
    "already_open",  # a second hello on the same socket
    "resume_failed",  # unknown conversation, wrong token, or resume window passed
    "unknown_message",  # feedback/choose on a seq that is not a bot message (with suggestions)
    "unknown_choice",  # choose names an article that is not among the message's suggestions
    "internal_error",  # the server failed; the frame was not processed, resend it
    "frame_too_large",  # sent just before the 1009 close
]

# WebSocket close codes the server uses (RFC 6455 section 7.4.1).
CLOSE_POLICY_VIOLATION = 1008  # origin not allowed (sent as HTTP 403 before accept)
CLOSE_MESSAGE_TOO_BIG = 1009  # frame larger than the maximum frame size
CLOSE_GOING_AWAY = 1001  # the peer is going away (a browser leaving the page)
CLOSE_SERVICE_RESTART = 1012  # server shutting down or restarting: reconnect and resume


# --- client -> server -----------------------------------------------------------------------


class HelloUser(BaseModel):
    """The signed-in customer as the site's page names them: ``hash`` is hex
    HMAC-SHA256(site secret, ``id``), computed on the site's server."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1, max_length=255)
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    hash: str | None = Field(None, max_length=128)


class HelloFrame(Frame):
    """Opens (or resumes) a conversation; must be the first frame on a socket."""

    direction: ClassVar[Direction] = "client"
    type: Literal["hello"] = "hello"
    conversation_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    resume_token: str | None = Field(None, min_length=1, max_length=MAX_TOKEN_CHARS)
    last_seq: int = Field(0, ge=0, le=MAX_SAFE_INT)
    visitor: dict[str, str | int | float | bool | None] | None = Field(
        None, max_length=MAX_VISITOR_KEYS
    )
    user: HelloUser | None = None  # a known customer, vouched for by the site (docs/widget.md)
    locale: str | None = Field(None, max_length=35, pattern=r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


class ClientMessageFrame(Frame):
    """A customer message; ``client_msg_id`` makes resends idempotent."""

    direction: ClassVar[Direction] = "client"
    type: Literal["message"] = "message"
    client_msg_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class HandoffRequestFrame(Frame):
    """The customer asks for a person."""

    direction: ClassVar[Direction] = "client"
    type: Literal["handoff_request"] = "handoff_request"
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)


class FeedbackFrame(Frame):
    """Was the bot message ``seq`` helpful? The last answer per message counts."""

    direction: ClassVar[Direction] = "client"
    type: Literal["feedback"] = "feedback"
    seq: int = Field(ge=1, le=MAX_SAFE_INT)
    helpful: bool
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)


class CsatFrame(Frame):
    """Customer satisfaction for the conversation, 1 (bad) to 5 (great), and optionally the
    effort it took (``ces``, 1 very hard to 7 very easy). One end-of-chat survey, one frame: an
    optional field keeps old clients and servers compatible, where a new frame type would not."""

    direction: ClassVar[Direction] = "client"
    type: Literal["csat"] = "csat"
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    ces: int | None = Field(None, ge=1, le=7)


class ChooseFrame(Frame):
    """The customer's pick among the articles bot message ``seq`` offered ("which of these?"):
    ``article_id`` gets the answer from that article, ``null`` ("none of these") hands over to a
    person. Required rather than defaulted, so a client that forgets it is refused instead of
    handing the conversation over by accident."""

    direction: ClassVar[Direction] = "client"
    type: Literal["choose"] = "choose"
    seq: int = Field(ge=1)
    article_id: str | None = Field(..., min_length=1, max_length=MAX_ARTICLE_ID_CHARS)
    client_msg_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)


class ClientTypingFrame(Frame):
    """The customer is typing (shown to an agent who holds the conversation)."""

    direction: ClassVar[Direction] = "client"
    type: Literal["typing"] = "typing"


class ConversationsRequestFrame(Frame):
    """A verified customer asks for their earlier conversations (answered by the server's
    ``conversations`` frame; empty for anyone else)."""

    direction: ClassVar[Direction] = "client"
    type: Literal["conversations"] = "conversations"


ClientFrame = Annotated[
    HelloFrame
    | ClientMessageFrame
    | HandoffRequestFrame
    | FeedbackFrame
    | CsatFrame
    | ChooseFrame
    | ClientTypingFrame
    | ConversationsRequestFrame,
    BY_TYPE,
]


# --- server -> client -----------------------------------------------------------------------


class WelcomeFrame(Frame):
    """Answer to hello: the conversation is open. Keep ``resume_token`` to reconnect."""

    direction: ClassVar[Direction] = "server"
    type: Literal["welcome"] = "welcome"
    conversation_id: str
    resume_token: str
    state: ConversationState
    last_seq: int = Field(0, ge=0, description="Highest seq stored in the conversation.")
    resumed: bool = False
    available: bool | None = Field(
        None, description="People answer the queue now (business hours); else the bot only."
    )
    next_opening: str | None = Field(
        None, description="With available false: when people are next there (ISO 8601)."
    )
    customer: WelcomeCustomer | None = Field(
        None, description="Who the site says the customer is; null when it named nobody."
    )
    email_replies: bool = Field(
        False, description="Replies can reach the customer by e-mail (the server has SMTP)."
    )


class WelcomeCustomer(BaseModel):
    """The customer the ``hello`` named, as far as it was proven."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    verified: bool = False


class ConversationSummary(BaseModel):
    """One of a verified customer's conversations, in the ``conversations`` frame."""

    model_config = ConfigDict(frozen=True)

    conversation_id: str
    resume_token: str
    state: ConversationState
    created_at: str
    updated_at: str
    last_message: str | None = None


class ConversationsFrame(Frame):
    """A verified customer's conversations on this site, most recent first."""

    direction: ClassVar[Direction] = "server"
    type: Literal["conversations"] = "conversations"
    conversations: list[ConversationSummary] = Field(default_factory=list)


class AckFrame(Frame):
    """The customer message ``client_msg_id`` is stored (committed) as ``seq``."""

    direction: ClassVar[Direction] = "server"
    type: Literal["ack"] = "ack"
    client_msg_id: str
    seq: int = Field(ge=1)
    duplicate: bool = Field(False, description="True when this was a resend of a stored message.")


class DeltaFrame(Frame):
    """A piece of the bot answer to message ``reply_to`` while it streams. A preview only: the
    following ``message`` frame carries the full stored text."""

    direction: ClassVar[Direction] = "server"
    type: Literal["delta"] = "delta"
    reply_to: int = Field(ge=1)
    text: str


class MessageFrame(Frame):
    """A stored message of the conversation, live or replayed on resume."""

    direction: ClassVar[Direction] = "server"
    type: Literal["message"] = "message"
    seq: int = Field(ge=1)
    role: Role
    text: str
    sources: list[Source] = Field(default_factory=list)
    author: str | None = None
    reply_to: int | None = None
    client_msg_id: str | None = None
    created_at: str | None = None
    suggestions: list[Source] | None = None  # "which of these?": only on a bot message offering

    @classmethod
    def from_message(cls, message: Message) -> MessageFrame:
        """The frame for a stored ``bot.core.models.Message`` row."""
        created = aware(message.created_at) if message.created_at is not None else None
        return cls(
            seq=message.seq,
            role=message.role,
            text=message.text,
            sources=[Source.model_validate(source) for source in message.sources or []],
            author=message.author,
            reply_to=message.reply_to,
            client_msg_id=message.client_msg_id,
            created_at=created.isoformat() if created is not None else None,
            suggestions=[Source.model_validate(s) for s in message.suggestions]
            if message.suggestions
            else None,
        )


class StateFrame(Frame):
    """The conversation changed state (bot -> awaiting_human -> human -> resolved)."""

    direction: ClassVar[Direction] = "server"
    type: Literal["state"] = "state"
    state: ConversationState
    reason: str | None = None
    available: bool | None = None  # as in welcome: people answer the queue now
    next_opening: str | None = None  # as in welcome: when people are next there


class TypingFrame(Frame):
    """Someone is composing: the bot while it retrieves, an agent, or (to agents) the customer."""

    direction: ClassVar[Direction] = "server"
    type: Literal["typing"] = "typing"
    role: Role


class ErrorFrame(BaseErrorFrame):
    """A frame was refused. The socket stays open unless a close follows."""

    code: ErrorCode
    client_msg_id: str | None = None
    retry_after_ms: int | None = None


ServerFrame = Annotated[
    WelcomeFrame
    | AckFrame
    | DeltaFrame
    | MessageFrame
    | StateFrame
    | TypingFrame
    | ErrorFrame
    | ConversationsFrame,
    BY_TYPE,
]


# --- parsing --------------------------------------------------------------------------------


class ProtocolError(_KitProtocolError):
    """A customer frame that cannot be processed; becomes an :class:`ErrorFrame` that names the
    frame's ``client_msg_id`` when it had one."""

    error_frame = ErrorFrame
    code: ErrorCode

    def __init__(self, code: ErrorCode, detail: str, *, client_msg_id: str | None = None) -> None:
        super().__init__(code, detail, client_msg_id=client_msg_id)


def _visitor_fits(data: dict[str, Any]) -> None:
    # Checked on the raw object: the model bounds the keys, not the size of the values.
    visitor = data.get("visitor")
    if isinstance(visitor, dict) and len(json.dumps(visitor)) > MAX_VISITOR_JSON_CHARS:
        raise ProtocolError("invalid_frame", "visitor is too large")


CLIENT: FrameParser[ClientFrame] = FrameParser(
    ClientFrame,
    error=ProtocolError,
    echo_max_chars=MAX_ID_CHARS,
    too_long={"text": "message_too_long"},
    checks=[_visitor_fits],
)
SERVER: FrameUnion[ServerFrame] = FrameUnion(ServerFrame)
CLIENT_TYPES = CLIENT.types
ALL_FRAMES: tuple[type[Frame], ...] = CLIENT.members + SERVER.members


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Parse one client frame, or raise :class:`ProtocolError` saying precisely what is wrong."""
    return CLIENT.parse(raw)


def parse_server_frame(data: dict[str, Any]) -> ServerFrame:
    """Validate a server frame (tests and the Python client use this)."""
    return SERVER.validate(data)
