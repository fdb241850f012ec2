"""Real LiteLLM against a real HTTP upstream: the ledger holds every response the provider billed, once,
with the provider's tokens, whatever retries, fallbacks, streams and caches did on the way."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import litellm
import pytest

from llmtally import Budgets, Ledger, Settings
from llmtally import budgets as api
from llmtally.db import Database
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS, REASONING_TOKENS, Upstream

USER = "github_77"
MESSAGES = [{"role": "user", "content": "How much did this cost?"}]


def meta() -> dict[str, Any]:
    """A fresh metadata dict per call: a Router writes its deployment into the caller's dict, and a later
    call given the same dict is then logged under that deployment's model."""
    return {"user_profile_id": USER}


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[Ledger]:
    litellm.suppress_debug_info = True
    async with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as started:
        yield started


def sdk(up: Upstream, behaviour: str = "ok", model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"model": f"openai/{model}", "api_base": up.api_base(behaviour), "api_key": "x"}


def deployment(name: str, up: Upstream, behaviour: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"model_name": name, "litellm_params": sdk(up, behaviour, model)}


def calls(db: Database) -> list[dict[str, Any]]:
    return db.fetch_all("select * from request_logs order by created_at, id")


def bare(model: str) -> str:
    return model.split("/", 1)[-1]


def assert_ledger_is_the_bill(db: Database, up: Upstream) -> None:
    """Every response the upstream billed is in the ledger once, with its tokens, and nothing else is."""
    billed = Counter(
        (bare(b.model), b.prompt_tokens, b.completion_tokens, b.cached_tokens, b.reasoning_tokens) for b in up.billed
    )
    recorded = Counter(
        (bare(a["model"]), a["prompt_tokens"], a["completion_tokens"], a["cached_tokens"], a["reasoning_tokens"])
        for a in db.fetch_all(
            "select a.* from request_attempts a"
            " where a.status = 'success' and not a.cache_hit and a.usage_source = 'provider'"
        )
    )
    estimated = db.fetch_one(
        "select count(*) as n from request_attempts where status = 'success' and usage_source = 'estimated'"
    )
    assert estimated is not None
    assert sum(billed.values()) == sum(recorded.values()) + estimated["n"]
    if not estimated["n"]:
        assert recorded == billed
    # what the calls' rows bill is what the attempts bill (no success lost behind a failure)
    totals = db.fetch_one(
        "select (select coalesce(sum(prompt_tokens), 0) from request_logs) as rows,"
        " (select coalesce(sum(prompt_tokens), 0) from request_attempts where status = 'success') as attempts"
    )
    assert totals is not None and totals["rows"] == totals["attempts"]
    assert_counters_match_ledger(db)


async def test_a_plain_call_is_recorded_as_billed(ledger: Ledger, db: Database, upstream: Upstream) -> None:
    response = await litellm.acompletion(**sdk(upstream), messages=MESSAGES, metadata=meta())
    assert await ledger.flush()
    [row] = calls(db)
    assert (row["status"], row["attempt_count"], row["usage_source"]) == ("success", 1, "provider")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    reported = response._hidden_params["response_cost"]
    assert abs(row["total_cost"] - Decimal(str(reported))) < Decimal("1e-9")
    assert row["cost_status"] == "priced"
    assert_ledger_is_the_bill(db, upstream)


async def test_sdk_fallbacks_are_one_call_billed_at_the_fallback(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    fallback = sdk(upstream, "ok", "gpt-4o")
    await litellm.acompletion(**sdk(upstream, "fail500"), messages=MESSAGES, metadata=meta(), fallbacks=[fallback])
    assert await ledger.flush()
    [row] = calls(db)
    assert (row["status"], row["model"], row["attempt_count"], row["failed_attempts"]) == ("success", "gpt-4o", 2, 1)
    assert row["total_cost"] > 0 and row["error"] is None
    attempts = db.fetch_all("select status, model, api_base, error_type from request_attempts order by created_at")
    assert [(a["status"], a["model"]) for a in attempts] == [("failure", "gpt-4o-mini"), ("success", "gpt-4o")]
    assert attempts[0]["api_base"].startswith("127.0.0.1:") and attempts[0]["error_type"]
    assert_ledger_is_the_bill(db, upstream)


@pytest.mark.parametrize("own_id", [False, True], ids=["router-ids", "own-id"])
async def test_router_retries_are_one_call(ledger: Ledger, db: Database, upstream: Upstream, own_id: bool) -> None:
    router = litellm.Router(model_list=[deployment("chat", upstream, "flaky2")], num_retries=3, retry_after=0)
    extra = {"litellm_call_id": "my-call-1"} if own_id else {}
    await router.acompletion(model="chat", messages=MESSAGES, metadata=meta(), **extra)
    assert await ledger.flush()
    [row] = calls(db)
    assert (row["status"], row["attempt_count"], row["failed_attempts"]) == ("success", 3, 2)
    assert row["model_group"] == "chat" and row["trace_id"] == row["call_key"]
    assert (row["model"], row["provider"]) == ("gpt-4o-mini", "openai")  # the SDK's name, not "openai/..."
    profile = db.fetch_one("select request_count, failure_count, attempt_count from user_profiles")
    assert profile == {"request_count": 1, "failure_count": 0, "attempt_count": 3}
    assert_ledger_is_the_bill(db, upstream)


async def test_router_fallbacks_count_logical_calls_and_their_attempts(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    """Five calls fall back from a 429 group, three fail everywhere: 8 calls, 3 failures, every attempt kept."""
    router = litellm.Router(
        model_list=[
            deployment("a", upstream, "fail429"),
            deployment("b", upstream, "ok", "gpt-4o"),
            deployment("down", upstream, "fail500"),
        ],
        num_retries=1,
        retry_after=0,
        fallbacks=[{"a": ["b"]}],
    )
    for _ in range(5):
        await router.acompletion(model="a", messages=MESSAGES, metadata=meta())
    for _ in range(3):
        with pytest.raises(litellm.InternalServerError):
            await router.acompletion(model="down", messages=MESSAGES, metadata=meta())
    assert await ledger.flush()
    rows = calls(db)
    assert Counter(r["status"] for r in rows) == {"success": 5, "failure": 3}
    profile = db.fetch_one("select request_count, success_count, failure_count, attempt_count from user_profiles")
    attempts = db.fetch_one("select count(*) as n from request_attempts")
    assert profile is not None and attempts is not None
    assert (profile["request_count"], profile["success_count"], profile["failure_count"]) == (8, 5, 3)
    assert profile["attempt_count"] == attempts["n"] == sum(r["attempt_count"] for r in rows)
    assert all(r["model_group"] == "b" for r in rows if r["status"] == "success")
    by_group = db.fetch_all(
        "select model_group, count(*) filter (where status = 'failure') as failures, count(*) as attempts"
        " from request_attempts group by 1 order by 1"
    )
    assert {g["model_group"]: g["failures"] == g["attempts"] for g in by_group} == {"a": True, "b": False, "down": True}
    assert_ledger_is_the_bill(db, upstream)


async def test_streams_with_and_without_usage(ledger: Ledger, db: Database, upstream: Upstream) -> None:
    for options in ({"include_usage": True}, None):
        extra = {"stream_options": options} if options else {}
        stream = await litellm.acompletion(**sdk(upstream), messages=MESSAGES, metadata=meta(), stream=True, **extra)
        async for _chunk in stream:
            pass
    assert await ledger.flush()
    with_usage, without = calls(db)
    assert (with_usage["usage_source"], with_usage["prompt_tokens"]) == ("provider", PROMPT_TOKENS)
    assert with_usage["completion_tokens"] == COMPLETION_TOKENS
    assert without["usage_source"] == "estimated"  # LiteLLM's tokenizer: not what was billed
    assert (without["prompt_tokens"], without["completion_tokens"]) != (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert db.fetch_one("select estimated_count from user_profiles") == {"estimated_count": 1}
    assert_ledger_is_the_bill(db, upstream)


async def test_cached_and_reasoning_tokens_are_kept_and_priced_as_litellm_prices_them(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    cached = await litellm.acompletion(**sdk(upstream, "cached"), messages=MESSAGES, metadata=meta())
    reasoning = await litellm.acompletion(**sdk(upstream, "reasoning", "o3-mini"), messages=MESSAGES, metadata=meta())
    assert await ledger.flush()
    one, two = calls(db)
    assert (one["cached_tokens"], two["reasoning_tokens"]) == (CACHED_TOKENS, REASONING_TOKENS)
    for row, response in ((one, cached), (two, reasoning)):
        assert abs(row["total_cost"] - Decimal(str(response._hidden_params["response_cost"]))) < Decimal("1e-9")
    # cached input is cheaper: below the price of the same tokens uncached
    full = Decimal(str(litellm.model_cost["gpt-4o-mini"]["input_cost_per_token"])) * PROMPT_TOKENS
    assert one["total_cost"] < full + COMPLETION_TOKENS * Decimal(
        str(litellm.model_cost["gpt-4o-mini"]["output_cost_per_token"])
    )
    profile = db.fetch_one("select cached_tokens, reasoning_tokens from user_profiles")
    assert profile == {"cached_tokens": CACHED_TOKENS, "reasoning_tokens": REASONING_TOKENS}
    assert_ledger_is_the_bill(db, upstream)


async def test_a_litellm_cache_hit_costs_nothing_and_says_what_it_saved(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    previous = litellm.cache
    litellm.cache = litellm.Cache(type="local")
    try:
        for _ in range(2):
            await litellm.acompletion(**sdk(upstream), messages=MESSAGES, metadata=meta(), caching=True)
            assert await ledger.flush()
    finally:
        litellm.cache = previous
    assert len(upstream.billed) == 1
    first, hit = calls(db)
    assert (first["cache_hit"], hit["cache_hit"]) == (False, True)
    assert (hit["total_cost"], hit["cost_status"]) == (0, "priced")
    assert (hit["prompt_tokens"], hit["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert hit["saved_cost"] is not None and abs(hit["saved_cost"] - first["total_cost"]) < Decimal("1e-9")
    assert db.fetch_one("select cache_hit_count from user_profiles") == {"cache_hit_count": 1}
    assert_ledger_is_the_bill(db, upstream)


def test_a_budgeted_call_that_fails_for_good_leaves_no_reservation(
    db: Database, db_url: str, upstream: Upstream
) -> None:
    db.execute("insert into user_profiles (user_id) values (%s)", (USER,))
    api.set_budget(db, USER, "daily", limit_usd=Decimal("1"))

    async def scenario() -> None:
        litellm.suppress_debug_info = True
        async with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
            budgets = Budgets(ledger)
            with pytest.raises(Exception, match="upstream exploded"):
                await budgets.acompletion(
                    user_id=USER,
                    messages=MESSAGES,
                    max_tokens=100,
                    fallbacks=[sdk(upstream, "fail500", "gpt-4o")],
                    **sdk(upstream, "fail500"),
                )
            assert await ledger.flush()

    asyncio.run(scenario())
    [row] = calls(db)
    # Both deployments were called; LiteLLM reports only the first failed attempt of such a chain.
    assert upstream.requests["fail500"] >= 2 and not upstream.billed
    assert (row["status"], row["total_cost"]) == ("failure", 0)
    (status,) = api.budget_status(db, USER, at=dt.datetime.now(dt.UTC))
    assert (status.spent_usd, status.reserved_usd, status.reserved_tokens) == (0, 0, 0)


def test_budgets_settle_a_fallen_back_call_to_its_billed_cost(db: Database, db_url: str, upstream: Upstream) -> None:
    db.execute("insert into user_profiles (user_id) values (%s)", (USER,))
    api.set_budget(db, USER, "daily", limit_usd=Decimal("1"))

    async def scenario() -> None:
        litellm.suppress_debug_info = True
        async with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
            budgets = Budgets(ledger)
            for _ in range(3):
                await budgets.acompletion(
                    user_id=USER,
                    messages=MESSAGES,
                    max_tokens=100,
                    fallbacks=[sdk(upstream, "ok", "gpt-4o")],
                    **sdk(upstream, "fail500"),
                )
            assert await ledger.flush()

    asyncio.run(scenario())
    rows = calls(db)
    assert [(r["status"], r["attempt_count"]) for r in rows] == [("success", 2)] * 3
    (status,) = api.budget_status(db, USER, at=dt.datetime.now(dt.UTC))
    assert status.spent_usd == sum(r["total_cost"] for r in rows) and status.spent_usd > 0
    assert (status.reserved_usd, status.reserved_tokens) == (0, 0)
    assert_ledger_is_the_bill(db, upstream)
