"""The stage row of one usage event: the fields of public.llmtally_event, in its order."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from llmtally.domain.cost import COST_QUANTUM, event_cost
from llmtally.domain.events import UsageEvent
from llmtally.integrations.litellm.prices import LITELLM_PRICES
from llmtally.ledger.sanitize import clean_text, to_json

# The fields of a stage row, in the order of ``event_row`` (and of the type public.llmtally_event).
EVENT_FIELDS = (
    "seq",
    "user_profile_id",
    "end_user",
    "session_id",
    "litellm_call_id",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "tokens_used",
    "total_cost",
    "cost_status",
    "messages",
    "response",
    "status",
    "error",
    "error_type",
    "latency_ms",
    "stream",
    "metadata",
    "created_at",
    "call_key",
    "attempt_key",
    "trace_id",
    "model_group",
    "model_id",
    "api_base",
    "cache_hit",
    "saved_cost",
    "usage_source",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "audio_tokens",
    "content_truncated",
    "content_original_bytes",
    "first_token_ms",
)


def event_row(seq: int, event: UsageEvent, *, store_content: bool = True) -> tuple[Any, ...]:
    """The stage row for one event (column order of ``copy_stage``)."""
    # Negative token counts are stored as 0: price the same numbers, so a cost is never negative.
    cost, cost_status = event_cost(event, LITELLM_PRICES)
    return (
        seq,
        clean_text(event.user_profile_id) or None,
        clean_text(event.end_user),
        clean_text(event.session_id),
        clean_text(event.litellm_call_id),
        clean_text(event.model) or "unknown",
        clean_text(event.provider) or "unknown",
        max(0, event.prompt_tokens),
        max(0, event.completion_tokens),
        max(0, event.tokens_used),
        cost,
        cost_status,
        to_json(event.messages) if store_content else None,
        to_json(event.response) if store_content else None,
        clean_text(event.status),
        clean_text(event.error),
        clean_text(event.error_type),
        None if event.latency_ms is None else max(0, event.latency_ms),
        event.stream,
        to_json(event.metadata or {}),
        event.created_at,
        clean_text(event.key),
        clean_text(event.attempt_key),
        clean_text(event.trace_id),
        clean_text(event.model_group),
        clean_text(event.model_id),
        clean_text(event.api_base),
        event.cache_hit,
        _as_cost(event.saved_cost),
        event.usage_source,
        max(0, event.cached_tokens),
        max(0, event.cache_creation_tokens),
        max(0, event.reasoning_tokens),
        max(0, event.audio_tokens),
        event.content_truncated,
        max(0, event.content_original_bytes or 0) if event.content_truncated else None,
        None if event.first_token_ms is None else max(0, event.first_token_ms),
    )


def _as_cost(value: Any) -> Decimal | None:
    """A saved cost as an exact decimal (LiteLLM's floats rounded to 1e-12), None if not a number."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        return None
    return Decimal(str(value)).quantize(COST_QUANTUM).normalize()
