"""``SUPPORTBOT_LLM``: parsing, and the chat model LangChain builds for it (nothing is called)."""

from __future__ import annotations

import sys

import pytest

from bot.core.settings import Settings
from bot.knowledge.llm import LLMConfigError, make_chat_model, parse_llm_setting


def settings_for(llm: str, **overrides: object) -> Settings:
    return Settings(llm=llm, _env_file=None, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("none", None),
        ("", None),
        ("OpenAI: gpt-4o-mini ", ("openai", "gpt-4o-mini")),
        ("llamacpp:/models/q4.gguf", ("llamacpp", "/models/q4.gguf")),
    ],
)
def test_the_setting_names_a_provider_and_a_model(
    value: str, parsed: tuple[str, str] | None
) -> None:
    assert parse_llm_setting(value) == parsed


@pytest.mark.parametrize("value", ["openai", "openai:", "mistral:large", "gpt-4o"])
def test_a_setting_that_is_not_understood_is_refused(value: str) -> None:
    with pytest.raises(LLMConfigError, match="not understood"):
        parse_llm_setting(value)


def test_no_model_means_the_extractive_answerer() -> None:
    assert make_chat_model(settings_for("none")) is None


def test_openai_goes_to_the_configured_compatible_server_and_streams() -> None:
    from langchain_openai import ChatOpenAI

    model = make_chat_model(
        settings_for("openai:local-model", llm_base_url="http://127.0.0.1:9/v1", llm_timeout_s=7)
    )
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "local-model"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.streaming is True
    assert model.request_timeout == 7
    assert model.openai_api_key is not None  # local servers accept any key


def test_a_provider_whose_package_is_missing_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain_anthropic", None)  # import fails
    with pytest.raises(LLMConfigError, match=r"supportbot\[anthropic\]"):
        make_chat_model(settings_for("anthropic:claude-x"))
