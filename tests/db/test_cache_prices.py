"""Custom prices for cached input and cache writes, and `prices reprice` over every token type.

LiteLLM counts cache reads and writes inside prompt_tokens; a custom price prices each part, and a
reprice from the price map gives what LiteLLM's own cost function gives for the whole usage.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from llmtally import UsageEvent
from llmtally.db import Database
from llmtally.ledger.postgres_sink import write_events
from llmtally.prices import delete_price, list_prices, reprice, set_price
from tests.support.cli import llmtally
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql

USER = "github_11"
AT = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
MILLION = Decimal(1_000_000)


def cached_call(key: str, model: str = "claude-sonnet-4-5", provider: str = "anthropic", **fields: Any) -> UsageEvent:
    """1,000 prompt tokens of which 600 were read from the cache and 100 written to it; 50 out."""
    base: dict[str, Any] = {
        "provider": provider,
        "user_profile_id": USER,
        "created_at": AT,
        "prompt_tokens": 1000,
        "completion_tokens": 50,
        "cached_tokens": 600,
        "cache_creation_tokens": 100,
        "reported_cost": 0.0,
    }
    return UsageEvent(key, model, "success", **(base | fields))


def cost_of(db: Database, key: str) -> tuple[Decimal, str]:
    row = db.fetch_one("select total_cost, cost_status from request_logs where call_key = %s", (key,))
    assert row is not None
    return row["total_cost"], row["cost_status"]


def test_a_custom_price_prices_cache_reads_and_writes_apart(db: Database) -> None:
    set_price(
        db,
        "acme-llm",
        input_per_million=Decimal(3),
        output_per_million=Decimal(15),
        cache_read_per_million=Decimal("0.3"),
        cache_creation_per_million=Decimal("3.75"),
    )
    write_events(db, [cached_call("c1", model="acme-llm")])
    expected = (300 * Decimal(3) + 600 * Decimal("0.3") + 100 * Decimal("3.75") + 50 * Decimal(15)) / MILLION
    assert cost_of(db, "c1") == (expected, "custom")
    assert_counters_match_ledger(db)


def test_a_custom_price_without_cache_prices_charges_the_input_price(db: Database) -> None:
    set_price(db, "acme-llm", input_per_million=Decimal(2), output_per_million=Decimal(8))
    write_events(db, [cached_call("c2", model="acme-llm")])
    assert cost_of(db, "c2") == ((1000 * Decimal(2) + 50 * Decimal(8)) / MILLION, "custom")
    [price] = list_prices(db)
    assert (price.cache_read_per_million, price.cache_creation_per_million) == (2, 2)


def test_reprice_applies_new_cache_prices_to_stored_rows(db: Database) -> None:
    set_price(db, "acme-llm", input_per_million=Decimal(2), output_per_million=Decimal(8))
    write_events(db, [cached_call("c3", model="acme-llm"), cached_call("hit", model="acme-llm", cache_hit=True)])
    set_price(
        db, "acme-llm", input_per_million=Decimal(2), output_per_million=Decimal(8), cache_read_per_million=Decimal(0)
    )
    assert reprice(db, "acme-llm") == 1  # the cache hit keeps its 0
    [price] = list_prices(db)
    assert (price.cache_read_per_million, price.cache_creation_per_million) == (0, 2)  # 0 is a price, not unset
    assert cost_of(db, "c3") == ((400 * Decimal(2) + 50 * Decimal(8)) / MILLION, "custom")
    assert cost_of(db, "hit") == (0, "priced")
    assert_counters_match_ledger(db)


def litellm_cost(model: str, provider: str, **usage: int) -> Decimal:
    """LiteLLM's own price of a whole usage, computed here independently of llmtally's code."""
    import litellm
    from litellm.types.utils import Usage

    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    prompt_cost, completion_cost = litellm.cost_per_token(
        model=f"{provider}/{model}",
        custom_llm_provider=provider,
        usage_object=Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details={
                "cached_tokens": usage.get("cached_tokens", 0),
                "audio_tokens": usage.get("audio_tokens", 0),
            },
            completion_tokens_details={"reasoning_tokens": usage.get("reasoning_tokens", 0)},
            cache_creation_input_tokens=usage.get("cache_creation_tokens", 0),
            cache_read_input_tokens=usage.get("cached_tokens", 0),
        ),
    )
    return Decimal(str(prompt_cost + completion_cost))


@pytest.mark.parametrize(
    ("model", "provider", "usage"),
    [
        ("claude-sonnet-4-5", "anthropic", {"cached_tokens": 600, "cache_creation_tokens": 100}),
        ("gpt-4o-mini", "openai", {"cached_tokens": 512, "cache_creation_tokens": 0}),
        ("qwen-turbo", "dashscope", {"cached_tokens": 0, "cache_creation_tokens": 0, "reasoning_tokens": 40}),
        ("gpt-audio-mini", "openai", {"cached_tokens": 0, "cache_creation_tokens": 0, "audio_tokens": 200}),
    ],
)
def test_reprice_from_the_price_map_prices_every_token_type_as_litellm_does(
    db: Database, model: str, provider: str, usage: dict[str, int]
) -> None:
    set_price(db, model, input_per_million=Decimal(1000), output_per_million=Decimal(1000))
    write_events(db, [cached_call("m1", model=model, provider=provider, **usage)])
    assert cost_of(db, "m1")[1] == "custom"
    delete_price(db, model)
    assert reprice(db, model) == 1
    cost, status = cost_of(db, "m1")
    expected = litellm_cost(model, provider, prompt_tokens=1000, completion_tokens=50, **usage)
    flat = litellm_cost(model, provider, prompt_tokens=1000, completion_tokens=50)
    assert status == "recomputed"
    assert abs(cost - expected) < Decimal("1e-9")
    assert expected != flat  # the cached or reasoning tokens change the price: this is not tokens x 2 prices
    assert reprice(db, model) == 0  # a second reprice changes nothing
    assert_counters_match_ledger(db)


def test_the_cli_sets_and_lists_cache_prices(db_url: str) -> None:
    set_ = llmtally(
        "prices", "set", "acme-llm", "--input", "3", "--output", "15", "--cached-input", "0.3", database_url=db_url
    )
    assert set_.returncode == 0, set_.stderr
    assert "$0.3 cached in / $3 cache write" in set_.stdout
    listed = llmtally("prices", "list", database_url=db_url)
    assert "cached input" in listed.stdout and "0.3" in listed.stdout
    bad = llmtally(
        "prices", "set", "acme-llm", "--input", "3", "--output", "1", "--cache-write", "-1", database_url=db_url
    )
    assert bad.returncode != 0 and "--cache-write must be zero or more" in bad.stderr
