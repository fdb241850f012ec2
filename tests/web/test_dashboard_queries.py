"""Every dashboard query reads the rollup or an index: EXPLAIN shows no sequential scan."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from llmtally.analytics.service import LATENCY_BOUNDS_MS, month_split
from llmtally.db import Database
from llmtally.db.queries import query
from tests.support.plans import index_names, table_scans
from tests.support.web_seed import ADA

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

TODAY = dt.datetime.now(dt.UTC).date()
PERIOD: dict[str, Any] = {"since": TODAY.replace(day=1), "until": TODAY + dt.timedelta(days=1)}
SPLIT = month_split(PERIOD["since"], PERIOD["until"], TODAY)

QUERIES: dict[str, tuple[dict[str, Any], str | None]] = {
    "period_totals": ({**PERIOD, **SPLIT}, None),
    "daily_by_model": (PERIOD, None),
    "unpriced_models": (PERIOD, None),
    "totals_by_model": (PERIOD, "request_logs_estimated_idx"),
    "error_rate_by_deployment": (PERIOD, "request_attempts_created_idx"),
    "top_users": ({**SPLIT, "limit": 10}, None),
    "top_users_one_month": ({"month": PERIOD["since"], "limit": 10}, "usage_monthly_users_top_idx"),
    "later_month_exists": ({"month": PERIOD["since"], "m_until": dt.date.max}, "usage_monthly_users_top_idx"),
    "recent_failures": ({**PERIOD, "limit": 50}, "request_logs_failures_idx"),
    "latency_histogram": (
        {**PERIOD, "sample": 10_000, "bounds": [*LATENCY_BOUNDS_MS, 2_147_483_647]},
        "request_logs_created_idx",
    ),
    "user_recent_requests": ({"user_id": ADA, "limit": 20, "with_content": True}, "request_logs_user_created_idx"),
    "check_api_token": ({"token_hash": "0" * 64}, "api_tokens_token_hash_key"),
    "export_requests": ({**PERIOD, "user_id": None, "end_user": None}, "request_logs_created_idx"),
}


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_dashboard_queries_use_the_rollup_or_an_index(seeded_db: Database, name: str) -> None:
    params, index = QUERIES[name]
    with seeded_db.transaction() as conn:
        conn.execute("set local enable_seqscan = off")  # only a missing index can force a seq scan now
        plan = conn.execute("explain (format json) " + query(name), params).fetchone()[0]
    scans = table_scans(plan)
    assert scans, "the plan reads no table"
    assert not [s for s in scans if s[0] == "Seq Scan"], scans
    if index:
        assert index in index_names(plan), index_names(plan)
