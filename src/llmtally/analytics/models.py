"""Typed, frozen, JSON-serialisable results of the analytics API (``.model_dump(mode="json")``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Any:
        return cls.model_validate(row)


class RequestCounts(_Result):
    total: int
    success: int
    failure: int
    cancelled: int


class TokenCounts(_Result):
    prompt: int
    completion: int
    total: int


class UserAnalytics(_Result):
    user_id: str
    email: str | None
    full_name: str | None
    provider: str | None
    requests: RequestCounts
    tokens: TokenCounts
    cost: Decimal
    unpriced_requests: int
    error_rate: Decimal | None
    models_used: list[str]
    first_request_at: dt.datetime | None
    last_request_at: dt.datetime | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UserAnalytics:
        return cls(
            user_id=row["user_id"],
            email=row["email"],
            full_name=row["full_name"],
            provider=row["provider"],
            requests=RequestCounts(
                total=row["total_requests"],
                success=row["successful_requests"],
                failure=row["failed_requests"],
                cancelled=row["cancelled_requests"],
            ),
            tokens=TokenCounts(
                prompt=row["prompt_tokens"], completion=row["completion_tokens"], total=row["total_tokens"]
            ),
            cost=row["total_cost"],
            unpriced_requests=row["unpriced_requests"],
            error_rate=row["error_rate"],
            models_used=list(row["models_used"] or []),
            first_request_at=row["first_request_at"],
            last_request_at=row["last_request_at"],
        )


class RequestRecord(_Result):
    id: int
    litellm_call_id: str
    created_at: dt.datetime
    model: str
    provider: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    tokens_used: int
    total_cost: Decimal | None
    cost_status: str
    latency_ms: int | None
    stream: bool
    error_type: str | None
    error: str | None
    session_id: str | None
    cache_hit: bool = False
    saved_cost: Decimal | None = None  # a cache hit: what the call would have cost
    usage_source: str = "provider"  # "estimated": the provider sent no usage (a stream without usage, cancelled)
    attempt_count: int = 1  # attempts of this call: retries and fallbacks included
    failed_attempts: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def notes(self) -> list[str]:
        """What a reader should know about this call's figures: cache hit, estimated usage, retries."""
        notes = []
        if self.cache_hit:
            notes.append("cache hit")
        if self.usage_source == "estimated":
            notes.append("estimated usage")
        if self.attempt_count > 1:
            retries = self.attempt_count - 1
            notes.append(f"{retries} retr{'y' if retries == 1 else 'ies'}")
        return notes


class RequestHistory(_Result):
    """One page of a user's requests, newest first; pass ``next_before`` to get the next page."""

    items: list[RequestRecord]
    next_before: str | None


class ModelUsage(_Result):
    model: str
    provider: str
    requests: int
    successes: int
    failures: int
    cancelled: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal
    unpriced_requests: int
    attempts: int = 0  # every attempt, retries and fallbacks included (requests counts logical calls)
    failed_attempts: int = 0
    cache_hits: int = 0
    estimated_requests: int = 0  # calls whose usage was estimated, not reported by the provider
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    audio_tokens: int = 0
    saved_cost: Decimal = Decimal(0)  # what the cache hits would have cost
    estimated_cost: Decimal | None = None  # the cost of the estimated calls (totals over all users only)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def retries(self) -> int:
        """Attempts beyond the first of each call."""
        return max(0, self.attempts - self.requests)


class ProviderUsage(_Result):
    provider: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal


class TokenBreakdown(_Result):
    user_id: str
    since: dt.date | None
    until: dt.date | None
    by_model: list[ModelUsage]
    by_provider: list[ProviderUsage]


class BreakdownEntry(_Result):
    requests: int
    tokens: int
    cost: Decimal
    unpriced_requests: int = 0  # requests without a price: not in ``cost`` (never counted as $0)


class MonthlyUsage(_Result):
    month: dt.date
    requests: int
    successes: int
    failures: int
    cancelled: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    total_cost: Decimal
    unpriced_requests: int = 0  # not in ``total_cost``
    model_breakdown: dict[str, BreakdownEntry]
    provider_breakdown: dict[str, BreakdownEntry]


class UserUsage(_Result):
    user_id: str
    email: str | None
    full_name: str | None
    requests: int
    total_tokens: int
    cost: Decimal
    failures: int


class DailyTotals(_Result):
    day: dt.date
    requests: int
    failures: int
    total_tokens: int
    cost: Decimal
    active_users: int


class DailyModelUsage(_Result):
    day: dt.date
    model: str
    provider: str
    requests: int
    successes: int
    failures: int
    cancelled: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal
    unpriced_requests: int


class DeploymentErrorRate(_Result):
    """Attempts by deployment (model group and API host), retries and fallbacks included."""

    model_group: str
    model: str
    provider: str
    api_base: str
    attempts: int
    failed_attempts: int
    error_rate: Decimal
    avg_latency_ms: Decimal | None


class ModelErrorRate(_Result):
    model: str
    provider: str
    requests: int
    failures: int
    error_rate: Decimal | None


class UserSummary(_Result):
    user_id: str
    email: str | None
    full_name: str | None
    provider: str | None
    request_count: int
    tokens_used: int
    total_cost: Decimal
    last_request_at: dt.datetime | None
    last_seen_at: dt.datetime | None


# -- dashboard ---------------------------------------------------------------------------------------
class PeriodTotals(_Result):
    since: dt.date
    until: dt.date
    requests: int
    failures: int
    total_tokens: int
    cost: Decimal
    active_users: int
    unpriced_requests: int
    error_rate: Decimal | None


class PeriodComparison(_Result):
    """A period's totals and those of the period of the same length just before it."""

    current: PeriodTotals
    previous: PeriodTotals


class UnpricedModel(_Result):
    model: str
    provider: str
    unpriced_requests: int
    total_tokens: int
    last_day: dt.date


class TagUsage(_Result):
    """One tag's calls over a period (a call with two tags counts under each)."""

    tag: str
    requests: int
    total_tokens: int
    cost: Decimal  # of the priced calls: unpriced_requests say how many had no price
    unpriced_requests: int


class RefusalCount(_Result):
    """Calls of one user and model refused for one reason over a period (``budget``: a hard budget;
    ``unpriced``: a USD budget and a model without a price; ``rpm``, ``tpm``: a rate limit)."""

    user_id: str
    reason: str
    model: str
    refused: int
    last_at: dt.datetime


class RefusalSummary(_Result):
    """A period's refused calls: they never reached a provider, so the ledger has no row for them."""

    budget: int  # by a hard budget (reasons budget and unpriced)
    rate_limit: int  # by a rate limit (rpm and tpm)
    rows: list[RefusalCount]


class FailureRecord(_Result):
    id: int
    created_at: dt.datetime
    user_id: str | None
    model: str
    provider: str
    error_type: str | None
    error: str | None
    latency_ms: int | None


class LatencyBucket(_Result):
    """Requests with ``lower_ms < latency <= upper_ms``; ``upper_ms`` None is the open last bucket."""

    lower_ms: int
    upper_ms: int | None
    requests: int


class LatencyHistogram(_Result):
    """Latency of the most recent ``sampled`` requests of a period (at most ``sample_limit``)."""

    sample_limit: int
    sampled: int
    buckets: list[LatencyBucket]


class ModelLatency(_Result):
    """Latency percentiles of one model's logical calls (``timed``: those with a latency)."""

    model: str
    provider: str
    requests: int
    timed: int
    cancelled: int
    failures: int
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    # Time to first token of the streams among them (``streamed``: those with a first chunk).
    streamed: int = 0
    first_token_p50_ms: int | None = None
    first_token_p95_ms: int | None = None


class DeploymentLatency(_Result):
    """Latency percentiles of the attempts sent to one deployment (model group, model, API host)."""

    model_group: str
    model: str
    provider: str
    api_base: str
    attempts: int
    timed: int
    cancelled: int
    failures: int
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None
    # Time to first token of the streams among them (``streamed``: those with a first chunk).
    streamed: int = 0
    first_token_p50_ms: int | None = None
    first_token_p95_ms: int | None = None


class LatencyPercentiles(_Result):
    """p50/p95/p99 of a period's most recent calls (at most ``sample_limit``; ``sampled`` were read)
    by model, and of its most recent attempts by deployment, with p50/p95 of the streams' time to first
    token. A call refused by a budget or a rate limit never reaches LiteLLM, so it is not among these
    (:meth:`Analytics.refusals` counts those)."""

    sample_limit: int
    sampled: int
    by_model: list[ModelLatency]
    by_deployment: list[DeploymentLatency]


class RecentRequest(RequestRecord):
    """A request with its content: ``messages`` and ``response`` are None when content is not shown."""

    messages: Any = None
    response: Any = None
