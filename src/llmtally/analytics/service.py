"""Per-user and admin analytics, each answered from an index or the daily rollup."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from llmtally.analytics.models import (
    DailyModelUsage,
    DailyTotals,
    DeploymentErrorRate,
    DeploymentLatency,
    FailureRecord,
    LatencyBucket,
    LatencyHistogram,
    LatencyPercentiles,
    ModelErrorRate,
    ModelLatency,
    ModelUsage,
    MonthlyUsage,
    PeriodComparison,
    PeriodTotals,
    ProviderUsage,
    RecentRequest,
    RefusalCount,
    RefusalSummary,
    RequestHistory,
    RequestRecord,
    TagUsage,
    TokenBreakdown,
    UnpricedModel,
    UserAnalytics,
    UserSummary,
    UserUsage,
)
from llmtally.db.database import Database
from llmtally.db.migrations import ensure_current, migrate
from llmtally.db.queries import query
from llmtally.errors import UnknownUser, UserInputError
from llmtally.settings import Settings

DateLike = dt.date | dt.datetime | str | None

# Latency histogram: bucket upper bounds (ms) over the most recent LATENCY_SAMPLE requests of a period.
LATENCY_BOUNDS_MS = (100, 250, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000)
LATENCY_SAMPLE = 10_000
LATENCY_PERCENTILE_SAMPLE = 20_000  # latency percentiles: the period's most recent calls (and attempts)
_OPEN_BOUND = 2_147_483_647


def as_date(value: DateLike, name: str) -> dt.date | None:
    """A date from a date, a datetime (its UTC day; a naive one is taken as UTC) or an ISO string."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UserInputError(f"{name} must be a date like 2026-01-31 (got {value!r})") from None


def _encode_cursor(created_at: dt.datetime, row_id: int) -> str:
    return f"{created_at.isoformat()}~{row_id}"


def _decode_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        at, row_id = cursor.rsplit("~", 1)
        when, number = dt.datetime.fromisoformat(at), int(row_id)
        if not 0 <= number < 2**63:
            raise ValueError(row_id)
        return when, number
    except ValueError:
        # Not echoed: an error answers with no text the caller did not get from the server.
        raise UserInputError("invalid history cursor: pass the next_before value of the page before") from None


def month_split(since: dt.date | None, until: dt.date | None, today: dt.date) -> dict[str, dt.date]:
    """Split the period [since, until) into whole months (read from ``usage_monthly``) and the days
    before and after them (read from ``usage_daily``): ``m_from``/``m_until``, ``d1_*`` and ``d2_*``.

    No row is stamped after today, so a period that ends after today covers the whole current month:
    "this month so far" is one row per user and model. An empty range has ``*_from >= *_until``.
    """
    low = since or dt.date.min
    high = until or dt.date.max
    if low.day == 1:
        m_from = low
    elif low.year == dt.date.max.year and low.month == 12:
        m_from = dt.date.max
    else:
        m_from = (low.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    m_until = dt.date.max if high > today else high.replace(day=1)
    if m_from >= m_until:  # no whole month inside the period: days only
        return {
            "m_from": m_from,
            "m_until": m_from,
            "d1_from": low,
            "d1_until": high,
            "d2_from": high,
            "d2_until": high,
        }
    return {
        "m_from": m_from,
        "m_until": m_until,
        "d1_from": low,
        "d1_until": m_from,
        "d2_from": m_until,
        "d2_until": high,
    }


def _next_month(month: dt.date) -> dt.date:
    return (
        dt.date.max
        if month.year == dt.date.max.year and month.month == 12
        else (month + dt.timedelta(days=32)).replace(day=1)
    )


def _single_month(split: dict[str, dt.date]) -> dt.date | None:
    """The month when a split period is whole months starting with one month and no day around them."""
    days_empty = split["d1_from"] >= split["d1_until"] and split["d2_from"] >= split["d2_until"]
    if days_empty and split["m_from"] < split["m_until"]:
        return split["m_from"]
    return None


def _check_limit(limit: int, most: int = 1000) -> None:
    if not 1 <= limit <= most:
        raise UserInputError(f"limit must be between 1 and {most} (got {limit})")


# The queries that read usage_daily_totals, and their versions for one user (sql/queries/analytics.sql).
_AS_USER = {
    "totals_by_model": "totals_by_model_as_user",
    "totals_by_day": "totals_by_day_as_user",
    "error_rate_by_model": "error_rate_by_model_as_user",
    "period_totals": "period_totals_as_user",
    "daily_by_model": "daily_by_model_as_user",
    "unpriced_models": "unpriced_models_as_user",
}


class Analytics:
    """The analytics API over one database. Use as a context manager for many calls."""

    def __init__(self, db: Database, *, owns_db: bool = False, viewer: str | None = None) -> None:
        self.db = db
        self._owns_db = owns_db
        self.viewer = viewer

    @classmethod
    def for_user(cls, db: Database, user_id: str) -> Analytics:
        """Analytics that read as ``user_id`` (Supabase's ``authenticated`` role with the user's claims):
        row-level security guarantees only that user's rows are visible, whatever is asked."""
        return cls(db, viewer=user_id)

    def _rows(self, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.viewer is not None:
            # usage_daily_totals is server-only: a query that reads it has a version that reads the
            # user's usage_daily rows instead (the same columns under row-level security).
            return self.db.fetch_all_as_user(self.viewer, query(_AS_USER.get(name, name)), params)
        return self.db.fetch_all(query(name), params)

    @classmethod
    def connect(cls, database_url: str | None = None, *, settings: Settings | None = None) -> Analytics:
        """Open the database the ledger would use: ``database_url``, else DATABASE_URL, else embedded."""
        base = settings or Settings()
        if database_url:
            base = base.model_copy(update={"database_url": database_url})
        db = Database.from_settings(base, max_size=2).open()
        try:
            if db.embedded is not None:
                migrate(db)
            else:
                ensure_current(db)
        except BaseException:
            db.close()
            raise
        return cls(db, owns_db=True)

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> Analytics:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _require_user(self, user_id: str) -> None:
        if not self._rows("user_exists", {"user_id": user_id}):
            raise UnknownUser(user_id)

    # -- per user --------------------------------------------------------------------------------
    def user_analytics(self, user_id: str) -> UserAnalytics:
        rows = self._rows("user_analytics", {"user_id": user_id})
        if not rows:
            raise UnknownUser(user_id)
        return UserAnalytics.from_row(rows[0])

    def user_request_history(self, user_id: str, limit: int = 50, before: str | None = None) -> RequestHistory:
        _check_limit(limit)
        before_at, before_id = _decode_cursor(before) if before else (None, None)
        rows = self._rows(
            "user_history",
            {"user_id": user_id, "before_at": before_at, "before_id": before_id, "limit": limit + 1},
        )
        if not rows and before is None:
            self._require_user(user_id)
        items = [RequestRecord.from_row(r) for r in rows[:limit]]
        next_before = _encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return RequestHistory(items=items, next_before=next_before)

    def user_token_breakdown(self, user_id: str, since: DateLike = None, until: DateLike = None) -> TokenBreakdown:
        since_d, until_d = as_date(since, "since"), as_date(until, "until")
        if since_d is not None and until_d is not None and until_d <= since_d:
            raise UserInputError(f"until ({until_d}) must be after since ({since_d})")
        split = month_split(since_d, until_d, dt.datetime.now(dt.UTC).date())
        rows = self._rows("user_breakdown_by_model", {"user_id": user_id, **split})
        if not rows:
            self._require_user(user_id)
        by_model = [ModelUsage.from_row(r) for r in rows]
        providers: dict[str, dict[str, Any]] = {}
        for m in by_model:
            p = providers.setdefault(
                m.provider,
                {
                    "provider": m.provider,
                    "requests": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "total_tokens": 0,
                    "cost": Decimal(0),
                },
            )
            p["requests"] += m.requests
            p["prompt_tokens"] += m.prompt_tokens
            p["completion_tokens"] += m.completion_tokens
            p["total_tokens"] += m.total_tokens
            p["cost"] += m.cost
        by_provider = sorted(
            (ProviderUsage(**p) for p in providers.values()), key=lambda p: (-p.cost, -p.total_tokens, p.provider)
        )
        return TokenBreakdown(user_id=user_id, since=since_d, until=until_d, by_model=by_model, by_provider=by_provider)

    def user_monthly_usage(self, user_id: str, months: int = 12) -> list[MonthlyUsage]:
        if not 1 <= months <= 120:
            raise UserInputError(f"months must be between 1 and 120 (got {months})")
        today = dt.datetime.now(dt.UTC).date()
        index = today.year * 12 + today.month - 1 - (months - 1)
        first = dt.date(index // 12, index % 12 + 1, 1)
        rows = self._rows("user_monthly", {"user_id": user_id, "first_month": first})
        if not rows:
            self._require_user(user_id)
        return [MonthlyUsage.from_row(r) for r in rows]

    # -- admin -----------------------------------------------------------------------------------
    def _period(self, since: DateLike, until: DateLike) -> dict[str, dt.date]:
        today = dt.datetime.now(dt.UTC).date()
        since_d = as_date(since, "since") or today.replace(day=1)
        until_d = as_date(until, "until") or today + dt.timedelta(days=1)
        if until_d <= since_d:
            raise UserInputError(f"until ({until_d}) must be after since ({since_d})")
        return {"since": since_d, "until": until_d}

    def top_users(self, since: DateLike = None, until: DateLike = None, limit: int = 10) -> list[UserUsage]:
        """Users by cost over the period (default: this month so far)."""
        _check_limit(limit)
        period = self._period(since, until)
        split = month_split(period["since"], period["until"], dt.datetime.now(dt.UTC).date())
        month = _single_month(split)
        if month is not None:
            later = split["m_until"] > _next_month(month)
            if (
                not later
                or not self._rows("later_month_exists", {"month": month, "m_until": split["m_until"]})[0]["later"]
            ):
                rows = self._rows("top_users_one_month", {"month": month, "limit": limit})
                return [UserUsage.from_row(r) for r in rows]
        rows = self._rows("top_users", {**split, "limit": limit})
        return [UserUsage.from_row(r) for r in rows]

    def totals_by_model(self, since: DateLike = None, until: DateLike = None) -> list[ModelUsage]:
        return [ModelUsage.from_row(r) for r in self._rows("totals_by_model", self._period(since, until))]

    def totals_by_day(self, since: DateLike = None, until: DateLike = None) -> list[DailyTotals]:
        return [DailyTotals.from_row(r) for r in self._rows("totals_by_day", self._period(since, until))]

    def error_rate_by_model(self, since: DateLike = None, until: DateLike = None) -> list[ModelErrorRate]:
        rows = self._rows("error_rate_by_model", self._period(since, until))
        return [ModelErrorRate.from_row(r) for r in rows]

    def error_rate_by_deployment(self, since: DateLike = None, until: DateLike = None) -> list[DeploymentErrorRate]:
        """Attempts, failed attempts and error rate by deployment: where retries and fallbacks happen."""
        rows = self._rows("error_rate_by_deployment", self._period(since, until))
        return [DeploymentErrorRate.from_row(r) for r in rows]

    def users(self, limit: int = 1000) -> list[UserSummary]:
        _check_limit(limit, 100_000)
        return [UserSummary.from_row(r) for r in self._rows("list_users", {"limit": limit})]

    # -- dashboard (admin) -----------------------------------------------------------------------
    def period_totals(self, since: DateLike = None, until: DateLike = None) -> PeriodComparison:
        """Totals of the period and of the period of the same length just before it, from the rollup."""
        period = self._period(since, until)
        length = period["until"] - period["since"]
        try:
            previous = {"since": period["since"] - length, "until": period["since"]}
        except OverflowError:
            raise UserInputError("the period is too long to compare with the one before it") from None

        def totals(p: dict[str, dt.date]) -> PeriodTotals:
            split = month_split(p["since"], p["until"], dt.datetime.now(dt.UTC).date())
            row = self._rows("period_totals", {**p, **split})[0]
            rate = round(Decimal(row["failures"]) / row["requests"], 4) if row["requests"] else None
            return PeriodTotals.model_validate({**p, **row, "error_rate": rate})

        return PeriodComparison(current=totals(period), previous=totals(previous))

    def daily_by_model(self, since: DateLike = None, until: DateLike = None) -> list[DailyModelUsage]:
        """Every day x model x provider of the period, all users together (the charts' series)."""
        return [DailyModelUsage.from_row(r) for r in self._rows("daily_by_model", self._period(since, until))]

    def unpriced_models(self, since: DateLike = None, until: DateLike = None) -> list[UnpricedModel]:
        return [UnpricedModel.from_row(r) for r in self._rows("unpriced_models", self._period(since, until))]

    def tag_usage(self, since: DateLike = None, until: DateLike = None, limit: int = 50) -> list[TagUsage]:
        """Requests, tokens and cost by tag (``metadata.tags`` of each call) over the period, costliest first."""
        _check_limit(limit)
        return [TagUsage.from_row(r) for r in self._rows("tag_usage", {**self._period(since, until), "limit": limit})]

    def refusals(self, since: DateLike = None, until: DateLike = None, limit: int = 50) -> RefusalSummary:
        """Calls refused by a hard budget or a rate limit over the period, counted by every process."""
        _check_limit(limit)
        period = self._period(since, until)
        totals = {r["reason"]: int(r["refused"]) for r in self._rows("refusal_totals", period)}
        rows = [RefusalCount.from_row(r) for r in self._rows("refusals_by_user", {**period, "limit": limit})]
        return RefusalSummary(
            budget=totals.get("budget", 0) + totals.get("unpriced", 0),
            rate_limit=totals.get("rpm", 0) + totals.get("tpm", 0),
            rows=rows,
        )

    def recent_failures(self, since: DateLike = None, until: DateLike = None, limit: int = 50) -> list[FailureRecord]:
        _check_limit(limit)
        rows = self._rows("recent_failures", {**self._period(since, until), "limit": limit})
        return [FailureRecord.from_row(r) for r in rows]

    def latency_histogram(
        self, since: DateLike = None, until: DateLike = None, sample: int = LATENCY_SAMPLE
    ) -> LatencyHistogram:
        """Latency of the period's most recent ``sample`` requests: bounded work at any table size."""
        _check_limit(sample, 100_000)
        bounds = [*LATENCY_BOUNDS_MS, _OPEN_BOUND]
        rows = self._rows("latency_histogram", {**self._period(since, until), "sample": sample, "bounds": bounds})
        buckets, lower = [], 0
        for row in rows:
            upper = int(row["upper_ms"])
            buckets.append(
                LatencyBucket(
                    lower_ms=lower, upper_ms=None if upper == _OPEN_BOUND else upper, requests=row["requests"]
                )
            )
            lower = upper
        return LatencyHistogram(sample_limit=sample, sampled=sum(b.requests for b in buckets), buckets=buckets)

    def latency_percentiles(
        self, since: DateLike = None, until: DateLike = None, sample: int = LATENCY_PERCENTILE_SAMPLE
    ) -> LatencyPercentiles:
        """p50/p95/p99 latency by model (logical calls) and by deployment (attempts) over the period's most
        recent ``sample`` rows of each, with their cancelled and failed counts."""
        _check_limit(sample, 1_000_000)
        params = {**self._period(since, until), "sample": sample}
        by_model = [ModelLatency.from_row(r) for r in self._rows("latency_percentiles_by_model", params)]
        by_deployment = [DeploymentLatency.from_row(r) for r in self._rows("latency_percentiles_by_deployment", params)]
        return LatencyPercentiles(
            sample_limit=sample,
            sampled=sum(m.requests for m in by_model),
            by_model=by_model,
            by_deployment=by_deployment,
        )

    def user_recent_requests(self, user_id: str, limit: int = 20, *, with_content: bool) -> list[RecentRequest]:
        """A user's newest requests, with their content when ``with_content`` (the content mode is full)."""
        _check_limit(limit)
        rows = self._rows("user_recent_requests", {"user_id": user_id, "limit": limit, "with_content": with_content})
        return [RecentRequest.from_row(r) for r in rows]
