"""Every setting is documented: the README's table is the one generated from ``Settings``."""

from __future__ import annotations

from bot.core.settings import Settings
from bot.core.settings_doc import END_MARKER, START_MARKER, env_name, with_table
from tests.conftest import REPO_ROOT


def test_readme_settings_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert START_MARKER in readme and END_MARKER in readme
    assert readme == with_table(readme), "run: python -m bot.core.settings_doc README.md"


def test_every_setting_has_a_description() -> None:
    undocumented = [
        env_name(name) for name, info in Settings.model_fields.items() if not info.description
    ]
    assert undocumented == []
