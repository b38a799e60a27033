"""The machinery both WebSocket vocabularies are built on: the customer's (``frames``) and the
agent console's (``agent_frames``).

A socket's vocabulary is a handful of discriminated unions of :class:`Frame` models. Everything
else is read off those unions, so each is written exactly once: :class:`FrameUnion` finds its
members and their ``type`` literals and builds the one ``TypeAdapter`` that validates them;
:class:`FrameParser` turns raw client text into a frame or a :class:`ProtocolError` whose code and
detail are the same on both sockets; an error frame's codes are the ``Literal`` of its ``code``
field. The wire is a public contract (docs/protocol.md, docs/agents.md): the codes and details
built here are what outside clients match on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Discriminator, TypeAdapter, ValidationError

Direction = Literal["client", "server"]

# The codes every socket's parser can answer with, so every socket's error frame speaks them.
ParseErrorCode = Literal[
    "invalid_json",  # the frame is not a JSON object
    "unknown_type",  # no or an unknown "type"
    "invalid_frame",  # a known type with missing or wrong fields
]

# Put in ``Annotated[A | B | ..., BY_TYPE]``: the union is told apart by its ``type`` field.
BY_TYPE = Discriminator("type")

# Hostile frames, refused before they reach a model or the database: nesting deeper than any
# frame needs (Python's JSON decoder recurses, and deep enough input raises RecursionError), and
# numbers no client needs (SQLite and PostgreSQL integers stop at 2**63, and JavaScript counts
# exactly only to 2**53, so a sequence number must stay below that).
MAX_JSON_DEPTH = 16
MAX_SAFE_INT = 2**53 - 1
_JSON_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Does JSON ``text`` nest arrays/objects deeper than ``limit``? Counted without parsing
    (strings skipped), so a hostile frame never reaches the recursive decoder."""
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut: an error detail must not echo a 16 KiB ``type`` back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def out_of_range(value: Any) -> bool:
    """Does a decoded frame hold a number outside +-(2**53 - 1), or NaN/Infinity? (The walk is
    bounded: the frame's depth was checked before decoding.)"""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not -MAX_SAFE_INT <= value <= MAX_SAFE_INT
    if isinstance(value, float):
        return not math.isfinite(value) or abs(value) > MAX_SAFE_INT
    if isinstance(value, dict):
        return any(out_of_range(item) for item in value.values())
    if isinstance(value, list):
        return any(out_of_range(item) for item in value)
    return False


F = TypeVar("F")


class Frame(BaseModel):
    """Base of every frame: a JSON object with a ``type``. Unknown fields are ignored so old
    servers accept frames from newer clients."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    direction: ClassVar[Direction]

    def dump(self) -> dict[str, Any]:
        """The JSON-ready dict that goes on the wire (optional fields left out when unset)."""
        return self.model_dump(mode="json", exclude_none=True)


def type_of(model: type[Frame]) -> str:
    """The ``type`` literal a frame class puts on the wire."""
    return str(model.model_fields["type"].default)


def members_of(union: Any) -> tuple[type[Frame], ...]:
    """The frame classes of a union, in order; nested (annotated) unions are flattened so a
    bigger union can be written in terms of smaller ones."""
    if get_origin(union) is Annotated:
        union = get_args(union)[0]
    choices = get_args(union) or (union,)
    found: list[type[Frame]] = []
    for choice in choices:
        if isinstance(choice, type) and issubclass(choice, Frame):
            found.append(choice)
        elif get_args(choice):
            found.extend(members_of(choice))
        else:
            raise TypeError(f"{choice!r} is not a frame")
    return tuple(found)


class BaseErrorFrame(Frame):
    """What every socket answers a refused frame with. A socket's error frame narrows ``code``
    to its own ``Literal`` (which must include :data:`ParseErrorCode`) and may add fields."""

    direction: ClassVar[Direction] = "server"
    type: Literal["error"] = "error"
    code: str
    detail: str

    @classmethod
    def codes(cls) -> frozenset[str]:
        """The codes this frame may carry, read from its ``code`` annotation."""
        return frozenset(get_args(cls.model_fields["code"].annotation))

    @classmethod
    def of(cls, exc: ProtocolError) -> Self:
        """This socket's error frame for ``exc``. A code the socket does not speak becomes
        ``invalid_frame``; ``client_msg_id`` travels only where the frame has the field."""
        fields: dict[str, Any] = {
            "code": exc.code if exc.code in cls.codes() else "invalid_frame",
            "detail": exc.detail,
        }
        if "client_msg_id" in cls.model_fields:
            fields["client_msg_id"] = exc.client_msg_id
        return cls.model_validate(fields)


class ProtocolError(Exception):
    """A client frame that cannot be processed; the socket answers with :meth:`frame` and stays
    open. Each socket subclasses it to name its error frame."""

    error_frame: ClassVar[type[BaseErrorFrame]]

    def __init__(self, code: str, detail: str, *, client_msg_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.client_msg_id = client_msg_id

    def frame(self) -> BaseErrorFrame:
        return self.error_frame.of(self)


class FrameUnion(Generic[F]):
    """One discriminated union of frames, all going the same direction. Its members and their
    ``type`` literals come from the union itself, and the ``TypeAdapter`` is built once."""

    def __init__(self, union: Any) -> None:
        self.members = members_of(union)
        directions = {model.direction for model in self.members}
        if len(directions) != 1:
            raise TypeError(f"a frame union goes one way, not {sorted(directions)}")
        self.direction: Direction = self.members[0].direction
        self.types = frozenset(type_of(model) for model in self.members)
        self._adapter: TypeAdapter[F] = TypeAdapter(union)

    def validate(self, data: dict[str, Any]) -> F:
        """The frame for an already decoded object; raises :class:`pydantic.ValidationError`."""
        return self._adapter.validate_python(data)


class FrameParser(FrameUnion[F]):
    """The frames a client sends: raw socket text in, a frame or a :class:`ProtocolError` out.

    ``error`` is the socket's :class:`ProtocolError` subclass. ``echo_max_chars``, when set,
    echoes a refused frame's ``client_msg_id`` in the error (only a string of at most that many
    characters, so a garbage id is not reflected back). ``too_long`` maps a field to the code
    for a string over its ``max_length`` (otherwise ``invalid_frame``). ``checks`` run on the
    decoded object once its type is known, before validation, and raise ``error`` themselves.
    """

    def __init__(
        self,
        union: Any,
        *,
        error: type[ProtocolError],
        echo_max_chars: int | None = None,
        too_long: Mapping[str, str] | None = None,
        checks: Sequence[Callable[[dict[str, Any]], None]] = (),
    ) -> None:
        super().__init__(union)
        if self.direction != "client":
            raise TypeError("only client frames are parsed from raw text")
        self.error = error
        self.echo_max_chars = echo_max_chars
        self.too_long = dict(too_long or {})
        self.checks = tuple(checks)
        # A code the error frame cannot carry would reach the client as invalid_frame: refuse
        # to build such a parser rather than find out on the wire.
        missing = {*get_args(ParseErrorCode), *self.too_long.values()} - error.error_frame.codes()
        if missing:
            raise TypeError(f"{error.error_frame.__name__} lacks the codes {sorted(missing)}")
        if echo_max_chars is not None and "client_msg_id" not in error.error_frame.model_fields:
            raise TypeError(f"{error.error_frame.__name__} has no client_msg_id to echo")

    def parse(self, raw: str | bytes) -> F:
        """Parse one client frame, or raise ``error`` saying precisely what is wrong."""
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            raise self.error("invalid_json", "frame is not UTF-8 text") from None
        if too_deep(text):
            raise self.error("invalid_json", f"frame nests deeper than {MAX_JSON_DEPTH} levels")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self.error("invalid_json", f"frame is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise self.error("invalid_json", "frame must be a JSON object")
        frame_type = data.get("type")
        ref = self._echo(data)
        if not isinstance(frame_type, str) or frame_type not in self.types:
            known = ", ".join(sorted(self.types))
            raise self.error(
                "unknown_type",
                f"unknown frame type {_short(frame_type)}; expected one of {known}",
                client_msg_id=ref,
            )
        if out_of_range(data):
            raise self.error(
                "invalid_frame",
                f"invalid {frame_type} frame: numbers must be finite and within "
                f"+-{MAX_SAFE_INT} (2**53 - 1)",
                client_msg_id=ref,
            )
        for check in self.checks:
            check(data)
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        # loc[0] is the union's tag (the frame type); the rest is the path inside the frame.
        for field, code in self.too_long.items():
            if any(e["type"] == "string_too_long" and e["loc"][1:] == (field,) for e in errors):
                raise self.error(code, f"{field} is too long", client_msg_id=ref)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'frame'}: {error['msg']}"
            for error in errors
        )
        raise self.error(
            "invalid_frame", f"invalid {frame_type} frame: {problems}", client_msg_id=ref
        )

    def _echo(self, data: dict[str, Any]) -> str | None:
        if self.echo_max_chars is None:
            return None
        client_msg_id = data.get("client_msg_id")
        if isinstance(client_msg_id, str) and len(client_msg_id) <= self.echo_max_chars:
            return client_msg_id
        return None
