"""The chat model behind ``SUPPORTBOT_LLM``: one setting picks the provider and the model.

``none`` (default) means no model: the extractive answerer runs. Otherwise the value is
``provider:model`` and the model is built through LangChain, so any provider speaks the same
streaming interface (``astream``) to the answerer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from bot.core.settings import Settings

PROVIDERS = ("openai", "ollama", "anthropic", "llamacpp")


class LLMConfigError(ValueError):
    """``SUPPORTBOT_LLM`` names an unknown provider or misses the model."""


def parse_llm_setting(value: str) -> tuple[str, str] | None:
    """``"openai:gpt-4o-mini"`` -> ``("openai", "gpt-4o-mini")``; ``"none"`` -> ``None``."""
    text = value.strip()
    if text.lower() in ("", "none", "off"):
        return None
    provider, sep, model = text.partition(":")
    provider = provider.strip().lower()
    if not sep or not model.strip() or provider not in PROVIDERS:
        raise LLMConfigError(
            f"SUPPORTBOT_LLM={value!r} is not understood: use none, openai:<model>, "
            "ollama:<model>, anthropic:<model> or llamacpp:<path.gguf>."
        )
    return provider, model.strip()


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """The configured chat model, or ``None`` for the extractive default."""
    parsed = parse_llm_setting(settings.llm)
    if parsed is None:
        return None
    provider, model = parsed
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if provider == "openai":
        from langchain_openai import ChatOpenAI

        # Local OpenAI-compatible servers (vLLM, llama.cpp, LM Studio) accept any key.
        return ChatOpenAI(
            model=model,
            base_url=settings.llm_base_url,
            api_key=api_key or "not-needed",
            temperature=settings.llm_temperature,
            timeout=settings.llm_timeout_s,
            max_retries=1,
            streaming=True,
        )
    if provider == "ollama":
        try:
            from langchain_ollama import ChatOllama
        except ImportError as exc:
            raise LLMConfigError("ollama needs: pip install 'supportbot[ollama]'") from exc
        kwargs: dict[str, object] = {"model": model, "temperature": settings.llm_temperature}
        if settings.llm_base_url:
            kwargs["base_url"] = settings.llm_base_url
        return ChatOllama(**kwargs)
    if provider == "anthropic":
        try:
            from langchain_anthropic import ChatAnthropic
        except ImportError as exc:
            raise LLMConfigError("anthropic needs: pip install 'supportbot[anthropic]'") from exc
        return ChatAnthropic(
            model=model,
            api_key=api_key,
            temperature=settings.llm_temperature,
            timeout=settings.llm_timeout_s,
            max_retries=1,
        )
    try:
        from langchain_community.chat_models import ChatLlamaCpp
    except ImportError as exc:
        raise LLMConfigError("llamacpp needs: pip install 'supportbot[llamacpp]'") from exc
    return ChatLlamaCpp(model_path=model, temperature=settings.llm_temperature, streaming=True)
