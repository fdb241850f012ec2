"""The typed usage event: what the ledger records about one LLM call."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["success", "failure", "cancelled"]
UsageSource = Literal["provider", "estimated"]


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """One attempt of an LLM call, as the callback saw it. Cost is resolved later, off the caller's path.

    Attempts of one logical call (retries, fallbacks) share ``call_key``: LiteLLM's trace id when it was
    given one (Router, Proxy), else the ``litellm_call_id``. ``attempt_key`` tells attempts apart (and
    finds a replayed one); without one the database uses the call id, status and start time.
    """

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
    # A stream's time to its first chunk (from the attempt's start); None if not streamed or no chunk came.
    first_token_ms: int | None = None
    stream: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    # Set when the content was too large (or unserialisable) and was stored cut: the original size.
    content_truncated: bool = False
    content_original_bytes: int | None = None
    call_key: str | None = None
    attempt_key: str | None = None
    trace_id: str | None = None
    model_group: str | None = None
    model_id: str | None = None
    api_base: str | None = None
    cache_hit: bool = False
    saved_cost: float | None = None
    usage_source: UsageSource = "provider"
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    audio_tokens: int = 0

    @property
    def key(self) -> str:
        """The logical call this attempt belongs to."""
        return self.call_key or self.litellm_call_id

    @property
    def tokens_used(self) -> int:
        if self.total_tokens is not None and self.total_tokens >= self.prompt_tokens + self.completion_tokens:
            return self.total_tokens
        return self.prompt_tokens + self.completion_tokens
