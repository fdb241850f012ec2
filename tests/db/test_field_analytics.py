"""Analytics tell retries, cache hits and estimated spend apart, from the rollups and the attempts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from llmtally import UsageEvent
from llmtally.analytics.service import Analytics
from llmtally.db import Database
from llmtally.ledger.postgres_sink import write_events
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql

USER = "github_5"
DAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def call(call_id: str, status: str, at: int, **fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "provider": "openai",
        "user_profile_id": USER,
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "reported_cost": 0.0001,
        "latency_ms": 100 * (at + 1),
        "created_at": DAY + dt.timedelta(seconds=at),
        "attempt_key": f"{call_id}:{at}",
    }
    if status == "failure":
        base |= {"prompt_tokens": 0, "completion_tokens": 0, "reported_cost": 0.0, "error": "boom"}
    return UsageEvent(call_id, "gpt-4o-mini", status, **(base | fields))  # type: ignore[arg-type]


@pytest.fixture
def recorded(db: Database) -> Database:
    write_events(
        db,
        [
            # twice failed on deployment a, then served by b
            call("r", "failure", 0, model_group="a", api_base="10.0.0.1"),
            call("r", "failure", 1, model_group="a", api_base="10.0.0.1"),
            call("r", "success", 2, model_group="b", api_base="10.0.0.2", cached_tokens=64),
            call("h", "success", 3, cache_hit=True, reported_cost=0.0, saved_cost=0.0001),
            call("e1", "success", 4, usage_source="estimated", reported_cost=0.0003),
            call("e2", "success", 5, usage_source="estimated", reported_cost=0.0002),
            call("f", "failure", 6, model_group="b", api_base="10.0.0.2"),
        ],
    )
    assert_counters_match_ledger(db)
    return db


def test_totals_by_model_count_calls_retries_cache_hits_and_estimated_spend(recorded: Database) -> None:
    [model] = Analytics(recorded).totals_by_model()
    assert (model.requests, model.failures, model.attempts, model.retries) == (5, 1, 7, 2)
    assert (model.cache_hits, model.saved_cost, model.cached_tokens) == (1, Decimal("0.0001"), 64)
    assert (model.estimated_requests, model.estimated_cost) == (2, Decimal("0.0005"))
    assert model.cost == Decimal("0.0001") + Decimal("0.0005")  # the cache hit cost nothing
    assert model.model_dump(mode="json")["retries"] == 2


def test_error_rate_by_deployment_counts_every_attempt(recorded: Database) -> None:
    rows = {d.model_group: d for d in Analytics(recorded).error_rate_by_deployment()}
    assert set(rows) == {"a", "b", "gpt-4o-mini"}  # h, e1 and e2 name no deployment: their model stands for it
    assert (rows["a"].attempts, rows["a"].failed_attempts, rows["a"].error_rate, rows["a"].api_base) == (
        2,
        2,
        Decimal(1),
        "10.0.0.1",
    )
    assert (rows["b"].attempts, rows["b"].failed_attempts, rows["b"].error_rate) == (2, 1, Decimal("0.5"))
    assert rows["gpt-4o-mini"].attempts == 3


def test_a_users_history_says_what_each_figure_is(recorded: Database) -> None:
    items = {r.litellm_call_id: r for r in Analytics(recorded).user_request_history(USER).items}
    assert items["r"].notes == ["2 retries"] and items["r"].attempt_count == 3
    assert items["h"].notes == ["cache hit"] and items["h"].saved_cost == Decimal("0.0001")
    assert items["e1"].notes == ["estimated usage"]
    assert items["f"].notes == []
    breakdown = Analytics(recorded).user_token_breakdown(USER)
    assert (breakdown.by_model[0].attempts, breakdown.by_model[0].cache_hits) == (7, 1)
