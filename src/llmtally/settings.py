"""One settings object, read from the environment (``LLMTALLY_*``, plus ``DATABASE_URL``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    queue_size: int = Field(default=100_000, ge=100, description="Events held in memory before callers wait.")
    content: Literal["full", "none"] = Field(
        default="full", description="Store message and response content (`full`) or usage only (`none`)."
    )

    @property
    def embedded(self) -> bool:
        return not self.database_url
