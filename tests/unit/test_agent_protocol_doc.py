"""docs/agents.md documents every frame and every error code of bot/conversations/agent_frames.py.

Agent tools are written from the doc, so a frame or a code that exists only in code is a
contract nobody was told about.
"""

from __future__ import annotations

import re
import typing

from bot.conversations.agent_frames import ALL_AGENT_FRAMES, AgentErrorCode
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "agents.md"
HEADING = re.compile(r"^### `(\w+)` \((client|server) -> (?:client|server)\)", re.M)


def documented_frames() -> set[tuple[str, str]]:
    """(direction, type) for every ``### `type` (client -> server)`` heading."""
    return {(m.group(2), m.group(1)) for m in HEADING.finditer(DOC.read_text())}


def frames_in_code() -> set[tuple[str, str]]:
    return {
        (model.direction, str(model.model_fields["type"].default)) for model in ALL_AGENT_FRAMES
    }


def test_every_frame_type_is_documented() -> None:
    missing = frames_in_code() - documented_frames()
    assert not missing, f"frames missing from docs/agents.md: {sorted(missing)}"
    stale = documented_frames() - frames_in_code()
    assert not stale, f"docs/agents.md documents frames that do not exist: {sorted(stale)}"


def test_every_field_of_every_frame_is_documented() -> None:
    sections = re.split(r"^### ", DOC.read_text(), flags=re.M)
    for model in ALL_AGENT_FRAMES:
        kind = str(model.model_fields["type"].default)
        heading = f"`{kind}` ({model.direction} ->"
        section = next(s for s in sections if s.startswith(heading))
        for name in model.model_fields:
            assert f"`{name}`" in section, f"{model.direction} frame {kind!r}: field {name!r}"


def test_every_frame_has_a_json_example() -> None:
    sections = re.split(r"^### ", DOC.read_text(), flags=re.M)
    for model in ALL_AGENT_FRAMES:
        kind = str(model.model_fields["type"].default)
        section = next(s for s in sections if s.startswith(f"`{kind}` ({model.direction} ->"))
        assert "```json" in section and f'"type": "{kind}"' in section, (model.direction, kind)


def test_every_error_code_is_documented() -> None:
    text = DOC.read_text()
    missing = [code for code in typing.get_args(AgentErrorCode) if f"`{code}`" not in text]
    assert not missing, f"error codes missing from docs/agents.md: {missing}"


def test_every_agent_route_is_documented() -> None:
    from bot.web.routes.agents import router

    headings = set(re.findall(r"^### .*?`([^`]+)`", DOC.read_text(), re.M))
    text = DOC.read_text()
    for route in router.routes:
        path = str(getattr(route, "path", "")).replace("{conversation_id}", "{id}")
        if path.startswith("/static"):
            continue
        if path == "/ws/agent":
            assert "`/ws/agent`" in text
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                assert f"{method} {path}" in headings, (
                    f"{method} {path} missing from docs/agents.md"
                )
