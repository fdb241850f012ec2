"""One settings object, read from the environment (``LLMTALLY_*``, plus ``DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmtally.errors import ConfigurationError


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("llmtally", appauthor=False))


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set by an environment variable."""

    model_config = SettingsConfigDict(env_prefix="LLMTALLY_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LLMTALLY_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL; unset means the embedded server under LLMTALLY_HOME.",
    )
    reader_database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of per-user reads (a login that is a member of anon and authenticated only);"
        " unset means DATABASE_URL logging in as llmtally_authenticator without a password.",
    )
    home: Path = Field(default_factory=default_home, description="Data directory (the embedded database).")
    batch_size: int = Field(default=500, ge=1, le=50_000, description="Most events written in one batch.")
    flush_interval_ms: int = Field(default=200, ge=10, le=60_000, description="Longest wait before a batch is written.")
    content: Literal["full", "redacted", "none"] = Field(
        default="full",
        description="Store message and response content (`full`), with personal data and secrets masked"
        " (`redacted`), or usage only (`none`).",
    )

    supabase_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LLMTALLY_SUPABASE_URL", "SUPABASE_URL"),
        description="Supabase project URL; with a server key and no database URL, usage is written through its API.",
    )
    supabase_service_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "LLMTALLY_SUPABASE_SERVICE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_SECRET_KEY"
        ),
        description="Supabase server key (service_role or sb_secret_...): never the anon or publishable key.",
    )

    # -- budgets and rate limits --
    reservation_ttl_s: int = Field(
        default=600,
        ge=1,
        le=86_400,
        description="Seconds a budget reservation lives if its call is never recorded (a crashed process).",
    )
    default_max_tokens: int = Field(
        default=4096,
        ge=1,
        description="max_tokens sent (and reserved) for a budgeted call whose model has no known output limit.",
    )
    budget_webhook_url: str | None = Field(
        default=None, description="URL that receives a JSON POST for each budget threshold crossed."
    )
    # -- durability and privacy (spool, poison input, retention) --
    spool_max_bytes: int = Field(
        default=1 << 30,
        ge=1 << 20,
        description="Most bytes of events waiting in the local spool before new ones are refused.",
    )
    spool_fsync: bool = Field(
        default=False,
        description="fsync the spool after every event: survives power loss, costs a disk flush per call.",
    )
    max_content_bytes: int = Field(
        default=4 << 20, ge=1 << 14, description="Largest stored content of one call; larger content is cut (flagged)."
    )
    shutdown_timeout_s: float = Field(
        default=10.0, ge=0, description="Longest wait at shutdown for queued events to reach the database."
    )
    retention_content_days: int | None = Field(
        default=None, ge=1, description="Applied daily by a running ledger: drop content of calls older than this."
    )
    retention_rows_days: int | None = Field(
        default=None, ge=1, description="Applied daily by a running ledger: delete calls older than this (totals stay)."
    )
    # -- the LiteLLM Proxy plug-in (llmtally.proxy, docs/litellm-proxy.md) --
    proxy_health_checks: Literal["tag", "skip"] = Field(
        default="tag",
        description="The proxy's /health calls: recorded with metadata health_check=true (`tag`), or not (`skip`).",
    )
    proxy_budgets: bool = Field(
        default=True,
        description="Reserve each proxied request against the key user's budgets and rate limits (refused if over).",
    )
    proxy_client_ip: bool = Field(
        default=False, description="Store the client's IP address (metadata client_ip) of proxied calls."
    )
    # -- the gateway (llmtally gateway and /v1 of llmtally up, docs/gateway.md) --
    gateway_direct: bool = Field(
        default=True,
        description="Send chat completions of plain openai/ deployments straight to the upstream (LiteLLM's Router"
        " takes over after a failure); false: every call through the Router.",
    )

    @property
    def embedded(self) -> bool:
        return not self.database_url

    def supabase_api(self) -> tuple[str, str] | None:
        """The Supabase URL and server key when usage goes through Supabase's API, else None.

        A database URL wins: with one set, the ledger writes to the database directly.
        """
        if self.database_url or (not self.supabase_url and self.supabase_service_key is None):
            return None
        if not self.supabase_url:
            raise ConfigurationError(
                "a Supabase server key is set but no SUPABASE_URL (or LLMTALLY_SUPABASE_URL): set it, or set"
                " DATABASE_URL to write to the database directly"
            )
        if self.supabase_service_key is None or not self.supabase_service_key.get_secret_value():
            raise ConfigurationError(
                "SUPABASE_URL is set but no server key: set LLMTALLY_SUPABASE_SERVICE_KEY (or"
                " SUPABASE_SERVICE_ROLE_KEY) to write usage through Supabase's API, or DATABASE_URL to write to"
                " the database directly"
            )
        return self.supabase_url, self.supabase_service_key.get_secret_value()
