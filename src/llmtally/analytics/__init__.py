"""The analytics API: synchronous functions with async twins (``*_async``).

Each call opens the database the ledger would use (``database_url=``, else DATABASE_URL, else the
embedded server) and closes it; for many calls, hold one ``Analytics.connect()`` open instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from llmtally.analytics.models import (
    DailyModelUsage,
    DailyTotals,
    ModelErrorRate,
    ModelUsage,
    MonthlyUsage,
    RequestHistory,
    RequestRecord,
    TokenBreakdown,
    UserAnalytics,
    UserSummary,
    UserUsage,
)
from llmtally.analytics.service import Analytics, DateLike


def _run(method: str, database_url: str | None, *args: Any, **kwargs: Any) -> Any:
    with Analytics.connect(database_url) as analytics:
        return getattr(analytics, method)(*args, **kwargs)


def get_user_analytics(user_id: str, *, database_url: str | None = None) -> UserAnalytics:
    """A user's lifetime requests, tokens, cost, models used, first and last request."""
    return _run("user_analytics", database_url, user_id)  # type: ignore[no-any-return]


def get_user_request_history(
    user_id: str, limit: int = 50, before: str | None = None, *, database_url: str | None = None
) -> RequestHistory:
    """A user's requests, newest first, one page at a time (cursor: ``next_before``)."""
    return _run("user_request_history", database_url, user_id, limit, before)  # type: ignore[no-any-return]


def get_user_token_breakdown(
    user_id: str, since: DateLike = None, until: DateLike = None, *, database_url: str | None = None
) -> TokenBreakdown:
    """A user's usage by model and by provider; ``since`` inclusive, ``until`` exclusive (UTC days)."""
    return _run("user_token_breakdown", database_url, user_id, since, until)  # type: ignore[no-any-return]


def get_user_monthly_usage(user_id: str, months: int = 12, *, database_url: str | None = None) -> list[MonthlyUsage]:
    """A user's usage per calendar month (UTC), newest first, with model and provider breakdowns."""
    return _run("user_monthly_usage", database_url, user_id, months)  # type: ignore[no-any-return]


async def get_user_analytics_async(user_id: str, *, database_url: str | None = None) -> UserAnalytics:
    return await asyncio.to_thread(get_user_analytics, user_id, database_url=database_url)


async def get_user_request_history_async(
    user_id: str, limit: int = 50, before: str | None = None, *, database_url: str | None = None
) -> RequestHistory:
    return await asyncio.to_thread(get_user_request_history, user_id, limit, before, database_url=database_url)


async def get_user_token_breakdown_async(
    user_id: str, since: DateLike = None, until: DateLike = None, *, database_url: str | None = None
) -> TokenBreakdown:
    return await asyncio.to_thread(get_user_token_breakdown, user_id, since, until, database_url=database_url)


async def get_user_monthly_usage_async(
    user_id: str, months: int = 12, *, database_url: str | None = None
) -> list[MonthlyUsage]:
    return await asyncio.to_thread(get_user_monthly_usage, user_id, months, database_url=database_url)


__all__ = [
    "Analytics",
    "DailyModelUsage",
    "DailyTotals",
    "ModelErrorRate",
    "ModelUsage",
    "MonthlyUsage",
    "RequestHistory",
    "RequestRecord",
    "TokenBreakdown",
    "UserAnalytics",
    "UserSummary",
    "UserUsage",
    "get_user_analytics",
    "get_user_analytics_async",
    "get_user_monthly_usage",
    "get_user_monthly_usage_async",
    "get_user_request_history",
    "get_user_request_history_async",
    "get_user_token_breakdown",
    "get_user_token_breakdown_async",
]
