"""Attempts of one logical call: a success supersedes a failure in any order, a replay changes nothing,
from several writers at once; counters, rollups and budgets follow the call's final outcome."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import random
import threading
from decimal import Decimal
from typing import Any

import pytest

from llmtally import UsageEvent
from llmtally.budgets import Estimate, settle_failed
from llmtally.budgets import reserve as reserve_call
from llmtally.db import Database
from llmtally.ledger.postgres_sink import write_events, write_lines
from llmtally.ledger.spool import encode
from llmtally.prices import delete_price, reprice, set_price
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

USER = "github_7"
T0 = dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=dt.UTC)  # the failure the day before the success
_n = itertools.count()


def attempt(key: str, status: str, at: dt.datetime, **fields: Any) -> UsageEvent:
    """One attempt of call ``key`` (the call id is shared, as in the Proxy or with SDK fallbacks)."""
    base: dict[str, Any] = {
        "provider": "openai",
        "user_profile_id": USER,
        "created_at": at,
        "attempt_key": f"{key}:{status}:{at.isoformat()}",
        "latency_ms": 100,
    }
    if status == "success":
        base |= {"prompt_tokens": 47, "completion_tokens": 19, "reported_cost": 0.0003075}
    else:
        base |= {"error": "upstream exploded", "error_type": "InternalServerError", "reported_cost": 0.0}
    base |= fields
    model = base.pop("model", "gpt-4o")
    return UsageEvent(key, model, status, **base)  # type: ignore[arg-type]


def failed_then_ok(key: str) -> list[UsageEvent]:
    return [
        attempt(key, "failure", T0, model="gpt-4o-mini", model_group="a", api_base="10.0.0.1:8000"),
        attempt(key, "failure", T0 + dt.timedelta(microseconds=5), model="gpt-4o-mini", model_group="a"),
        attempt(key, "success", T0 + dt.timedelta(seconds=2), model="gpt-4o", model_group="b"),
    ]


def call_row(db: Database, key: str) -> dict[str, Any]:
    row = db.fetch_one("select * from request_logs where call_key = %s", (key,))
    assert row is not None
    return row


def profile(db: Database) -> dict[str, Any]:
    row = db.fetch_one("select * from user_profiles where user_id = %s", (USER,))
    assert row is not None
    return row


def assert_settled_on_success(db: Database, key: str) -> None:
    row = call_row(db, key)
    assert (row["status"], row["model"], row["model_group"], row["error"]) == ("success", "gpt-4o", "b", None)
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_used"]) == (47, 19, 66)
    assert row["total_cost"] == Decimal("0.0003075") and row["cost_status"] == "priced"
    assert (row["attempt_count"], row["failed_attempts"]) == (3, 2)
    assert row["created_at"] == T0  # the call started with its first attempt
    attempts = db.fetch_all(
        "select status, model from request_attempts where call_key = %s order by created_at", (key,)
    )
    assert [(a["status"], a["model"]) for a in attempts] == [
        ("failure", "gpt-4o-mini"),
        ("failure", "gpt-4o-mini"),
        ("success", "gpt-4o"),
    ]
    assert_counters_match_ledger(db)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_success_supersedes_its_failures_in_any_order_of_batches(db: Database, order: tuple[int, ...]) -> None:
    events = failed_then_ok("call-1")
    for i in order:
        assert write_events(db, [events[i]]) == 1
    assert_settled_on_success(db, "call-1")
    p = profile(db)
    assert (p["request_count"], p["success_count"], p["failure_count"]) == (1, 1, 0)
    assert (p["attempt_count"], p["failed_attempt_count"]) == (3, 2)
    assert p["total_cost"] == Decimal("0.0003075")
    daily = db.fetch_all("select day, model, requests, failures, attempts from usage_daily order by day, model")
    # the rollup moved from the failures' day and model to the success's
    assert [(d["model"], d["requests"], d["failures"], d["attempts"]) for d in daily if d["requests"]] == [
        ("gpt-4o", 1, 0, 3)
    ]


def test_attempts_in_one_batch_and_every_replay_change_nothing(db: Database) -> None:
    events = failed_then_ok("call-2")
    assert write_events(db, list(reversed(events))) == 3
    before = (call_row(db, "call-2"), profile(db), db.fetch_all("select * from usage_daily order by day, model"))
    assert write_events(db, events) == 0
    assert write_events(db, events + events) == 0
    assert write_events(db, [events[0]]) == 0
    assert (
        call_row(db, "call-2"),
        profile(db),
        db.fetch_all("select * from usage_daily order by day, model"),
    ) == before
    assert_settled_on_success(db, "call-2")


def test_replayed_spool_records_through_the_fast_path_change_nothing(db: Database) -> None:
    events = failed_then_ok("call-3")
    lines = [encode(e) for e in events]
    assert write_lines(db, lines[2:]) == 1
    assert write_lines(db, lines) == 2
    assert write_lines(db, lines) == 0
    assert_settled_on_success(db, "call-3")


def test_router_attempts_with_their_own_ids_are_one_call_by_trace(db: Database) -> None:
    """A Router left to make ids gives each attempt its own litellm_call_id and all of them one trace id."""
    events = [
        dataclasses.replace(e, litellm_call_id=f"gen-{i}", call_key="trace-9", trace_id="trace-9")
        for i, e in enumerate(failed_then_ok("unused"))
    ]
    write_events(db, events[1:])
    write_events(db, events[:1])
    [row] = db.fetch_all("select * from request_logs")
    assert (row["call_key"], row["trace_id"], row["litellm_call_id"]) == ("trace-9", "trace-9", "gen-2")
    assert (row["status"], row["attempt_count"], row["failed_attempts"]) == ("success", 3, 2)
    assert db.fetch_one("select count(distinct litellm_call_id) as n from request_attempts")["n"] == 3
    assert_counters_match_ledger(db)


def test_a_call_that_only_fails_is_one_failure_with_its_last_error(db: Database) -> None:
    a, b = (attempt("call-4", "failure", T0 + dt.timedelta(seconds=s), error=f"try {s}") for s in (0, 1))
    write_events(db, [a])
    write_events(db, [b])
    row = call_row(db, "call-4")
    assert (row["status"], row["attempt_count"], row["failed_attempts"], row["total_cost"]) == ("failure", 2, 2, 0)
    assert row["error"] == "try 0"  # an equal status adds its usage; the first recorded outcome is kept
    p = profile(db)
    assert (p["request_count"], p["failure_count"], p["attempt_count"]) == (1, 1, 2)
    assert_counters_match_ledger(db)


def test_cancelled_is_superseded_by_success_and_supersedes_failure(db: Database) -> None:
    fail = attempt("call-5", "failure", T0)
    cancelled = attempt("call-5", "cancelled", T0 + dt.timedelta(seconds=1), prompt_tokens=9, usage_source="estimated")
    write_events(db, [fail])
    write_events(db, [cancelled])
    row = call_row(db, "call-5")
    assert (row["status"], row["prompt_tokens"], row["usage_source"]) == ("cancelled", 9, "estimated")
    write_events(db, [attempt("call-5", "success", T0 + dt.timedelta(seconds=2))])
    row = call_row(db, "call-5")
    assert (row["status"], row["prompt_tokens"], row["usage_source"], row["attempt_count"]) == (
        "success",
        47,
        "provider",
        3,
    )
    assert_counters_match_ledger(db)


def test_several_writers_at_once_give_the_same_calls(db: Database, db_url: str) -> None:
    """Four writers each deliver every attempt of 40 calls, shuffled: each call ends as its success, once."""
    calls = [failed_then_ok(f"par-{i}") for i in range(40)]
    every = [e for events in calls for e in events]

    def writer(seed: int) -> None:
        mine = every[:]
        random.Random(seed).shuffle(mine)
        with Database(db_url) as own:
            for start in range(0, len(mine), 7):
                write_events(own, mine[start : start + 7])

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.fetch_one("select count(*) as n from request_attempts")["n"] == 120
    rows = db.fetch_all("select status, attempt_count, failed_attempts, total_cost from request_logs")
    assert len(rows) == 40
    assert {(r["status"], r["attempt_count"], r["failed_attempts"], r["total_cost"]) for r in rows} == {
        ("success", 3, 2, Decimal("0.0003075"))
    }
    p = profile(db)
    assert (p["request_count"], p["success_count"], p["failure_count"], p["attempt_count"]) == (40, 40, 0, 120)
    assert_counters_match_ledger(db)


def test_the_reservation_settles_against_the_calls_billed_cost(db: Database) -> None:
    """The failure arrives first and keeps the reservation (the call may still be billed); the success
    settles it and counts as spent."""
    db.execute("insert into user_profiles (user_id) values (%s)", (USER,))
    db.execute("insert into budgets (user_profile_id, period, limit_usd) values (%s, 'monthly', 1)", (USER,))
    est = Estimate(
        model="gpt-4o",
        provider="openai",
        prompt_tokens=50,
        completion_tokens=100,
        usd=Decimal("0.01"),
        send_max_tokens=None,
    )
    now = dt.datetime.now(dt.UTC)
    reserve_call(db, USER, "budgeted", est)
    fail, _, ok = (dataclasses.replace(e, created_at=now) for e in failed_then_ok("budgeted"))
    write_events(db, [dataclasses.replace(fail, attempt_key="f")])
    spent = db.fetch_one("select spent_usd, reserved_usd from llmtally_budget_usage(%s, now())", (USER,))
    assert spent == {"spent_usd": 0, "reserved_usd": Decimal("0.01")}  # held while the call is retried
    write_events(db, [dataclasses.replace(ok, attempt_key="s")])
    spent = db.fetch_one("select spent_usd, reserved_usd from llmtally_budget_usage(%s, now())", (USER,))
    assert spent == {"spent_usd": Decimal("0.0003075"), "reserved_usd": 0}
    assert_counters_match_ledger(db)


def test_a_call_that_failed_for_good_is_settled_by_its_caller(db: Database) -> None:
    db.execute("insert into user_profiles (user_id) values (%s)", (USER,))
    db.execute("insert into budgets (user_profile_id, period, limit_usd) values (%s, 'monthly', 1)", (USER,))
    db.execute("insert into rate_limits (user_profile_id, rpm) values (%s, 100)", (USER,))
    est = Estimate(
        "gpt-4o", "openai", prompt_tokens=50, completion_tokens=100, usd=Decimal("0.01"), send_max_tokens=None
    )
    reserve_call(db, USER, "doomed", est)
    write_events(db, [attempt("doomed", "failure", dt.datetime.now(dt.UTC))])
    assert settle_failed(db, "doomed") is True
    assert settle_failed(db, "doomed") is False  # once
    usage = db.fetch_one("select spent_usd, reserved_usd from llmtally_budget_usage(%s, now())", (USER,))
    assert usage == {"spent_usd": 0, "reserved_usd": 0}
    window = db.fetch_one("select count(*) as n from rate_limit_log where litellm_call_id = 'doomed'")
    assert window == {"n": 1}  # the call was made: it still counts against the rate limit


def test_a_cache_hit_costs_what_litellm_reported_and_keeps_its_tokens(db: Database) -> None:
    db.execute("insert into model_prices (model, input_cost_per_token, output_cost_per_token) values ('gpt-4o', 1, 1)")
    hit = attempt("hit-1", "success", T0, cache_hit=True, reported_cost=0.0, saved_cost=0.0003075)
    write_events(db, [hit])
    row = call_row(db, "hit-1")
    assert (row["cache_hit"], row["total_cost"], row["cost_status"]) == (True, 0, "priced")
    assert (row["prompt_tokens"], row["completion_tokens"], row["saved_cost"]) == (47, 19, Decimal("0.0003075"))
    p = profile(db)
    assert (p["cache_hit_count"], p["total_cost"], p["saved_cost"]) == (1, 0, Decimal("0.0003075"))
    assert_counters_match_ledger(db)


def test_token_types_are_stored_and_priced_by_litellm(db: Database) -> None:
    cached = attempt("types-1", "success", T0, model="gpt-4o-mini", reported_cost=None, cached_tokens=32)
    reasoning = attempt("types-2", "success", T0, model="o3-mini", reported_cost=None, reasoning_tokens=11)
    write_events(db, [cached, reasoning])
    one, two = call_row(db, "types-1"), call_row(db, "types-2")
    # LiteLLM's own prices of these usages (what it reports for them in the same calls)
    assert (one["cached_tokens"], one["total_cost"], one["cost_status"]) == (32, Decimal("0.00001605"), "recomputed")
    assert (two["reasoning_tokens"], two["total_cost"]) == (11, Decimal("0.0001353"))
    assert_counters_match_ledger(db)


def test_both_write_paths_store_the_same_attempt_fields(db: Database) -> None:
    event = attempt(
        "paths",
        "success",
        T0,
        call_key="trace-p",
        trace_id="trace-p",
        model_group="g",
        model_id="m-1",
        api_base="h:1",
        cache_hit=True,
        saved_cost=0.25,
        usage_source="estimated",
        cached_tokens=3,
        cache_creation_tokens=4,
        reasoning_tokens=5,
        audio_tokens=6,
    )
    write_lines(db, [encode(event)])
    write_events(db, [dataclasses.replace(event, call_key="trace-q", attempt_key="other")])
    columns = (
        "trace_id, model_group, cache_hit, saved_cost, usage_source, cached_tokens, cache_creation_tokens,"
        " reasoning_tokens, audio_tokens, total_cost, cost_status"
    )
    fast, python = (
        db.fetch_one(f"select {columns} from request_logs where call_key = %s", (k,)) for k in ("trace-p", "trace-q")
    )
    assert fast == python and fast is not None and fast["saved_cost"] == Decimal("0.25")
    fast_a, python_a = (
        db.fetch_one("select model_id, api_base, usage_source from request_attempts where call_key = %s", (k,))
        for k in ("trace-p", "trace-q")
    )
    assert fast_a == python_a == {"model_id": "m-1", "api_base": "h:1", "usage_source": "estimated"}


def test_a_spool_record_written_before_attempts_existed_is_its_own_call(db: Database) -> None:
    record = {
        "v": 2,
        "id": "old-record",
        "model": "gpt-4o",
        "status": "success",
        "provider": "openai",
        "user": USER,
        "pt": 5,
        "ct": 6,
        "at": T0.isoformat(),
        "c": "0.001",
        "cs": "priced",
    }
    line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
    assert write_lines(db, [line]) == 1
    assert write_lines(db, [line]) == 0
    row = call_row(db, "old-record")
    assert (row["attempt_count"], row["usage_source"], row["cache_hit"], row["tokens_used"]) == (
        1,
        "provider",
        False,
        11,
    )
    assert_counters_match_ledger(db)


def test_a_reprice_leaves_cache_hits_at_zero(db: Database) -> None:
    hit = attempt("hit-2", "success", T0, cache_hit=True, reported_cost=0.0)
    paid = attempt("paid-2", "success", T0)
    write_events(db, [hit, paid])
    set_price(db, "gpt-4o", input_per_million=Decimal("1000"), output_per_million=Decimal("1000"))
    assert reprice(db, "gpt-4o") == 1
    assert (call_row(db, "hit-2")["total_cost"], call_row(db, "paid-2")["total_cost"]) == (0, Decimal("0.066"))
    delete_price(db, "gpt-4o")
    reprice(db, "gpt-4o")
    assert call_row(db, "hit-2")["total_cost"] == 0
    assert_counters_match_ledger(db)
