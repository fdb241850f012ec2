"""The typed usage event: what the ledger records about one LLM call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["success", "failure", "cancelled"]


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One LLM call, as the callback saw it. Cost is resolved later, off the caller's path."""

    litellm_call_id: str
    model: str
    status: Status
    provider: str = "unknown"
    user_profile_id: str | None = None
    end_user: str | None = None
    session_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int | None = None
    reported_cost: float | None = None
    messages: Any = None
    response: Any = None
    error: str | None = None
    error_type: str | None = None
    latency_ms: int | None = None
    stream: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # Set when the content was too large (or unserialisable) and was stored cut: the original size.
    content_truncated: bool = False
    content_original_bytes: int | None = None

    @property
    def tokens_used(self) -> int:
        if self.total_tokens is not None and self.total_tokens >= self.prompt_tokens + self.completion_tokens:
            return self.total_tokens
        return self.prompt_tokens + self.completion_tokens
