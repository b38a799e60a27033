"""Renders the configuration table in README.md from ``Settings`` itself.

``python -m bot.core.settings_doc`` rewrites the table between the markers in README.md; a test
fails when the README's table differs, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import SecretStr
from pydantic.fields import FieldInfo

from bot.core.settings import Settings


def env_name(field_name: str) -> str:
    return f"SUPPORTBOT_{field_name.upper()}"


def _default(info: FieldInfo) -> str:
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "(dev placeholder)"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) or "(empty)"
    return str(value)


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        meaning = (info.description or "").replace("|", "\\|")
        default = _default(info).replace("|", "\\|")
        rows.append(f"| `{env_name(name)}` | `{default}` | {meaning} |")
    return "\n".join(rows)


START_MARKER = "<!-- settings-table:start -->"
END_MARKER = "<!-- settings-table:end -->"


def with_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by the current table."""
    head, _, rest = readme.partition(START_MARKER)
    _, _, tail = rest.partition(END_MARKER)
    return f"{head}{START_MARKER}\n{settings_table()}\n{END_MARKER}{tail}"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    target.write_text(with_table(target.read_text()))
