"""The chat model behind ``SUPPORTBOT_LLM``: one setting picks the provider and the model.

``none`` (default) means no model: the extractive answerer runs. Otherwise the value is
``provider:model``. OpenAI, Ollama and Anthropic models are built by LangChain's
``init_chat_model``, so adding a provider is a table entry, not a new code path; llama.cpp has no
entry there and comes from ``langchain-community``. Every provider then speaks the same streaming
interface (``astream``) to the answerer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

    from bot.core.settings import Settings

PROVIDERS = ("openai", "ollama", "anthropic", "llamacpp")

EXTRA_FOR_PROVIDER = {"ollama": "ollama", "anthropic": "anthropic", "llamacpp": "llamacpp"}
"""The ``supportbot[...]`` extra that installs each optional provider's integration package."""


class LLMConfigError(ValueError):
    """``SUPPORTBOT_LLM`` names an unknown provider, misses the model, or its package is absent."""


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


def provider_options(provider: str, settings: Settings) -> dict[str, Any]:
    """The keyword arguments each provider's chat model gets from our settings.

    Streaming is asked for explicitly where the class has the switch: the answerer streams
    tokens to the chat as they arrive.
    """
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    if provider == "openai":
        # Local OpenAI-compatible servers (vLLM, llama.cpp's server, LM Studio) accept any key.
        return {
            "base_url": settings.llm_base_url,
            "api_key": api_key or "not-needed",
            "temperature": settings.llm_temperature,
            "timeout": settings.llm_timeout_s,
            "max_retries": 1,
            "streaming": True,
        }
    if provider == "ollama":
        options: dict[str, Any] = {"temperature": settings.llm_temperature}
        if settings.llm_base_url:
            options["base_url"] = settings.llm_base_url
        return options
    if provider == "anthropic":
        return {
            "api_key": api_key,
            "temperature": settings.llm_temperature,
            "timeout": settings.llm_timeout_s,
            "max_retries": 1,
        }
    return {"temperature": settings.llm_temperature, "streaming": True}


def make_chat_model(settings: Settings) -> BaseChatModel | None:
    """The configured chat model, or ``None`` for the extractive default."""
    parsed = parse_llm_setting(settings.llm)
    if parsed is None:
        return None
    provider, model = parsed
    options = provider_options(provider, settings)
    try:
        if provider == "llamacpp":
            from langchain_community.chat_models import ChatLlamaCpp

            llama: BaseChatModel = ChatLlamaCpp(model_path=model, **options)
            return llama
        from langchain.chat_models import init_chat_model

        chat_model: BaseChatModel = init_chat_model(model, model_provider=provider, **options)
        return chat_model
    except ImportError as exc:
        extra = EXTRA_FOR_PROVIDER.get(provider)
        if extra is None:
            raise
        raise LLMConfigError(
            f"SUPPORTBOT_LLM={settings.llm!r} needs: pip install 'supportbot[{extra}]'"
        ) from exc
