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
    home: Path = Field(default_factory=default_home, description="Data directory (the embedded database).")
    batch_size: int = Field(default=500, ge=1, le=50_000, description="Most events written in one batch.")
    flush_interval_ms: int = Field(default=200, ge=10, le=60_000, description="Longest wait before a batch is written.")
    # 10,000 events with typical content keep a writing process under 300 MB (docs/benchmarks.md).
    queue_size: int = Field(default=10_000, ge=100, description="Events held in memory before callers wait.")
    content: Literal["full", "none"] = Field(
        default="full", description="Store message and response content (`full`) or usage only (`none`)."
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
