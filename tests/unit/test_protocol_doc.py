"""docs/protocol.md documents every frame and every error code of bot/conversations/frames.py.

Outside clients are written from the doc, so a frame or a code that exists only in code is a
contract nobody was told about.
"""

from __future__ import annotations

import re
import typing

from bot.conversations.frames import ALL_FRAMES, ErrorCode
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "protocol.md"


def documented_frames() -> set[tuple[str, str]]:
    """(direction, type) for every ``### `type` (client -> server)`` heading."""
    found = set()
    for match in re.finditer(
        r"^### `(\w+)` \((client|server) -> (?:client|server)\)", DOC.read_text(), re.M
    ):
        found.add((match.group(2), match.group(1)))
    return found


def test_every_frame_type_is_documented() -> None:
    frames = {(model.direction, str(model.model_fields["type"].default)) for model in ALL_FRAMES}
    missing = frames - documented_frames()
    assert not missing, f"frames missing from docs/protocol.md: {sorted(missing)}"
    stale = documented_frames() - frames
    assert not stale, f"docs/protocol.md documents frames that do not exist: {sorted(stale)}"


def test_every_field_of_every_frame_is_documented() -> None:
    text = DOC.read_text()
    sections = re.split(r"^### ", text, flags=re.M)
    for model in ALL_FRAMES:
        kind = str(model.model_fields["type"].default)
        heading = f"`{kind}` ({model.direction} ->"
        section = next(s for s in sections if s.startswith(heading))
        for name in model.model_fields:
            assert f"`{name}`" in section, f"{model.direction} frame {kind!r}: field {name!r}"


def test_every_error_code_is_documented() -> None:
    text = DOC.read_text()
    codes = typing.get_args(ErrorCode)
    missing = [code for code in codes if f"`{code}`" not in text]
    assert not missing, f"error codes missing from docs/protocol.md: {missing}"
