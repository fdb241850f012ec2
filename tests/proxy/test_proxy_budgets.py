"""Exact budgets and rate limits inside the real LiteLLM Proxy: its pre-call hook reserves with llmtally's
budgets, and a refused client gets the error the OpenAI SDK expects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from llmtally import budgets
from llmtally.db import Database
from llmtally.db.queries import query
from tests.support.cluster import Cluster
from tests.support.invariants import assert_counters_match_ledger
from tests.support.proxy import Proxy, run_proxy, write_config
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, Upstream

KEYS = {
    "sk-carol": {"user_id": "carol", "team_id": "team-c", "key_alias": "carol-batch"},
    "sk-dave": {"user_id": "dave", "team_id": "team-d", "key_alias": "dave-cron"},
    "sk-erin": {"user_id": "erin", "team_id": "team-e", "key_alias": "erin-app"},
}
# A prompt LiteLLM's tokenizer counts as more tokens than the upstream bills (47), so that the reserved
# worst case (prompt + max_tokens) bounds the billed cost, as it does against a real provider.
PROMPT = "Please count every one of these words carefully before you answer the question. " * 6
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture(scope="module")
def db(cluster: Cluster, template: str) -> Iterator[Database]:
    with cluster.database(template) as url, Database(url) as database:
        yield database


def add_user(db: Database, user_id: str) -> None:
    db.execute(query("upsert_user"), {"user_id": user_id, "email": None, "full_name": None, "provider": None})


def recorded(db: Database, user_id: str) -> dict[str, Any]:
    row = db.fetch_one(
        "select count(*) as n, sum(total_cost) as usd from request_logs where user_profile_id = %(u)s", {"u": user_id}
    )
    assert row is not None
    return row


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    where = tmp_path_factory.mktemp("proxy-budgets")
    params = {"model": "openai/gpt-4o-mini", "api_base": upstream.api_base("ok"), "api_key": "sk-upstream"}
    broken = {**params, "api_base": upstream.api_base("fail500")}
    models = [
        {"model_name": "gpt-4o-mini", "litellm_params": params},
        {"model_name": "broken", "litellm_params": broken},
    ]
    config = write_config(where, models, KEYS)
    with run_proxy(config, db.url, where / "home") as running:
        yield running


def test_a_rate_limit_refuses_with_429_and_retry_after(proxy: Proxy, db: Database) -> None:
    add_user(db, "dave")
    budgets.set_rate_limit(db, "dave", rpm=3, tpm=None)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-dave", max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=COMPLETION_TOKENS)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=COMPLETION_TOKENS)
    assert refused.value.status_code == 429
    assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
    assert "requests per minute" in refused.value.message


def test_a_request_that_fails_for_the_client_leaves_no_reservation(proxy: Proxy, db: Database) -> None:
    add_user(db, "erin")
    budgets.set_budget(db, "erin", "daily", limit_usd=Decimal("1"))
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-erin", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="broken", messages=MESSAGES, max_tokens=COMPLETION_TOKENS)
    deadline = time.monotonic() + 30
    while recorded(db, "erin")["n"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert recorded(db, "erin")["n"] == 1
    left = db.fetch_one("select count(*) as n from budget_reservations where user_id = 'erin'")
    assert left == {"n": 0}


@pytest.mark.slow
def test_300_concurrent_requests_never_overspend(proxy: Proxy, db: Database, upstream: Upstream) -> None:
    fits = 12
    billed_cost = (PROMPT_TOKENS * Decimal("0.15") + COMPLETION_TOKENS * Decimal("0.6")) / 10**6  # gpt-4o-mini
    limit = billed_cost * fits
    add_user(db, "carol")
    budgets.set_budget(db, "carol", "daily", limit_usd=limit)
    before = len(upstream.billed)

    async def one(client: openai.AsyncOpenAI) -> str:
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=COMPLETION_TOKENS)
        except openai.RateLimitError as exc:
            assert isinstance(exc.body, dict) and exc.body.get("type") == "budget_exceeded", exc.body
            assert "budget" in exc.message
            return "refused"
        return "admitted"

    async def burst() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=f"{proxy.url}/v1", api_key="sk-carol", max_retries=0, timeout=120
        ) as client:
            return await asyncio.gather(*(one(client) for _ in range(300)))

    outcomes = asyncio.run(burst())
    admitted = outcomes.count("admitted")
    assert 1 <= admitted <= fits and outcomes.count("refused") == 300 - admitted
    assert len(upstream.billed) - before == admitted
    deadline = time.monotonic() + 30
    while recorded(db, "carol")["n"] < admitted:
        assert time.monotonic() < deadline, "the admitted calls were not all recorded"
        time.sleep(0.2)
    spent = recorded(db, "carol")
    assert spent["n"] == admitted and spent["usd"] <= limit
    print(f"admitted {admitted} of 300 (fits {fits}), spent {spent['usd']} of {limit}")
    assert db.fetch_one("select count(*) as n from budget_reservations") == {"n": 0}
    assert_counters_match_ledger(db)
