"""The real LiteLLM Proxy (``litellm --config``, from .venv-proxy) with llmtally's plug-in, the real
``openai`` client, and the local upstream as the provider: what the ledger holds for each request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmtally.db import Database
from tests.support.cluster import Cluster
from tests.support.invariants import assert_counters_match_ledger
from tests.support.proxy import MASTER_KEY, Proxy, run_proxy, write_config
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, Upstream

KEYS = {
    "sk-alice": {"user_id": "alice", "team_id": "team-a", "key_alias": "alice-laptop"},
    "sk-bob": {"user_id": "bob", "team_id": "team-b", "key_alias": "bob-ci"},
    MASTER_KEY: {"user_id": "admin", "user_role": "proxy_admin"},
}
MESSAGES: list[Any] = [{"role": "user", "content": "How much did this cost?"}]
# What a proxied row's metadata may hold: the client's own keys, and the identity the proxy vouches for.
PROXY_KEYS = {"team_id", "team_alias", "key_alias", "org_id", "route", "tags", "health_check", "client_ip"}
PROXY_KEYS |= {"response_id"}  # a Responses API call's, from the provider's response


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture(scope="module")
def database_url(cluster: Cluster, template: str) -> Iterator[str]:
    with cluster.database(template) as url:
        yield url


def deployment(name: str, up: Upstream, behaviour: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    params = {"model": f"openai/{model}", "api_base": up.api_base(behaviour), "api_key": "sk-upstream"}
    return {"model_name": name, "litellm_params": params}


@pytest.fixture(scope="module")
def proxy(upstream: Upstream, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    where = tmp_path_factory.mktemp("proxy")
    config = write_config(
        where,
        [
            deployment("gpt-4o-mini", upstream, "ok"),
            deployment("flaky", upstream, "flaky2-proxy"),
            deployment("primary", upstream, "fail500-proxy"),
            deployment("backup", upstream, "ok-backup", "gpt-4o"),
            deployment("slow", upstream, "slow"),
        ],
        KEYS,
        router_settings={"num_retries": 3, "retry_after": 0, "fallbacks": [{"primary": ["backup"]}]},
        litellm_settings={"num_retries": 3},
    )
    with run_proxy(config, database_url, where / "home") as running:
        yield running


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Database]:
    with Database(database_url) as database:
        yield database


def client(proxy: Proxy, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """The first truthy result of ``check`` (the proxy writes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def rows(db: Database, where: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return db.fetch_all(f"select * from request_logs where {where} order by created_at, id", params or {})


def test_alices_key_cannot_bill_bob(proxy: Proxy, db: Database) -> None:
    reply = client(proxy, "sk-alice").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, user="alice-customer-7", metadata={"user_profile_id": "bob"}
    )
    assert reply.usage is not None and reply.usage.prompt_tokens == PROMPT_TOKENS
    [row] = eventually(lambda: rows(db, "end_user = 'alice-customer-7'"))
    assert (row["user_profile_id"], row["team_id"], row["key_alias"]) == ("alice", "team-a", "alice-laptop")
    assert (row["prompt_tokens"], row["completion_tokens"], row["status"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        "success",
    )
    assert row["total_cost"] > 0 and row["model"] == "gpt-4o-mini"
    assert not rows(db, "user_profile_id = 'bob'")
    assert_counters_match_ledger(db)


def test_usage_breaks_down_by_team_and_key(proxy: Proxy, db: Database) -> None:
    for key in ("sk-bob", "sk-bob", "sk-alice"):
        client(proxy, key).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="breakdown")
    eventually(lambda: len(rows(db, "end_user = 'breakdown'")) == 3)
    by_team = db.fetch_all(
        "select team_id, key_alias, count(*) as calls, sum(total_cost) > 0 as billed from request_logs"
        " where end_user = 'breakdown' group by 1, 2 order by 1"
    )
    assert by_team == [
        {"team_id": "team-a", "key_alias": "alice-laptop", "calls": 1, "billed": True},
        {"team_id": "team-b", "key_alias": "bob-ci", "calls": 2, "billed": True},
    ]


def test_a_bad_key_writes_no_row(proxy: Proxy, db: Database) -> None:
    started = db.fetch_one("select now() as t")
    assert started is not None
    with pytest.raises(openai.AuthenticationError):
        client(proxy, "sk-mallory").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="mallory")
    # a good request after it: once it is written, the rejected one would have been too
    client(proxy, "sk-alice").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="after-mallory")
    assert eventually(lambda: rows(db, "end_user = 'after-mallory'"))
    time.sleep(0.5)
    since = db.fetch_all(
        "select end_user, status, error from request_attempts where created_at >= %(t)s", {"t": started["t"]}
    )
    assert [(a["end_user"], a["status"]) for a in since] == [("after-mallory", "success")]


def test_proxy_bookkeeping_is_trimmed(proxy: Proxy, db: Database) -> None:
    client(proxy, "sk-bob").chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, user="trimmed", metadata={"feature": "search"}
    )
    [row] = eventually(lambda: rows(db, "end_user = 'trimmed'"))
    assert row["metadata"]["feature"] == "search"
    assert set(row["metadata"]) - {"feature"} <= PROXY_KEYS
    stored = str(db.fetch_one("select r::text as t from request_logs r where id = %(id)s", {"id": row["id"]}))
    for secret in ("sk-bob", "user_api_key", "127.0.0.1", "token=", "hash", "headers"):
        assert secret not in stored


def test_retries_are_one_call_billed_once(proxy: Proxy, db: Database, upstream: Upstream) -> None:
    """Two 500s, then a completion: one logical call, billed as the provider billed it, its attempts kept.

    The proxy retries both in its Router and in the provider client, and LiteLLM reports only the Router's
    attempts: the ledger holds as many attempts as LiteLLM reported, the last one the billed success."""
    client(proxy, "sk-alice").chat.completions.create(model="flaky", messages=MESSAGES, user="retried")
    assert upstream.requests["flaky2-proxy"] == 3
    [billed] = upstream.billed_for("flaky2-proxy")
    [row] = eventually(lambda: rows(db, "end_user = 'retried' and status = 'success'"))
    assert rows(db, "end_user = 'retried'") == [row]
    assert (row["prompt_tokens"], row["completion_tokens"]) == (billed.prompt_tokens, billed.completion_tokens)
    assert row["total_cost"] > 0 and row["attempt_count"] >= 2
    attempts = db.fetch_all(
        "select status from request_attempts where call_key = %(k)s order by created_at", {"k": row["call_key"]}
    )
    statuses = [a["status"] for a in attempts]
    assert statuses[-1] == "success" and set(statuses[:-1]) == {"failure"}
    assert row["attempt_count"] == len(statuses) and row["failed_attempts"] == len(statuses) - 1


def test_fallbacks_are_one_call_billed_at_the_fallback(proxy: Proxy, db: Database, upstream: Upstream) -> None:
    client(proxy, "sk-alice").chat.completions.create(model="primary", messages=MESSAGES, user="fell-back")
    [row] = eventually(lambda: rows(db, "end_user = 'fell-back' and status = 'success'"))
    assert rows(db, "end_user = 'fell-back'") == [row]
    assert (row["model"], row["user_profile_id"]) == ("gpt-4o", "alice")
    assert row["attempt_count"] >= 2 and row["total_cost"] > Decimal(0)
    assert len(upstream.billed_for("ok-backup")) == 1
    assert_counters_match_ledger(db)


def test_a_client_leaving_mid_stream_is_cancelled_with_the_tokens_streamed(proxy: Proxy, db: Database) -> None:
    stream = client(proxy, "sk-bob").chat.completions.create(
        model="slow", messages=MESSAGES, user="left-early", stream=True
    )
    seen = ""
    for chunk in stream:
        seen += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        if len(seen.split()) >= 3:
            break
    stream.close()
    [row] = eventually(lambda: rows(db, "end_user = 'left-early'"))
    assert (row["status"], row["usage_source"], row["user_profile_id"]) == ("cancelled", "estimated", "bob")
    streamed = len(seen.split())
    # the words streamed before the client left (LiteLLM's tokenizer: one token per word here), not the bill
    assert streamed <= row["completion_tokens"] < COMPLETION_TOKENS
    assert row["total_cost"] > 0
    assert_counters_match_ledger(db)


def test_a_stored_response_retrieved_through_the_proxy_is_billed_once(
    proxy: Proxy, db: Database, upstream: Upstream
) -> None:
    """LiteLLM reports a retrieval with the stored response's usage and cost again: the plug-in skips it."""
    alice = client(proxy, "sk-alice")
    made = alice.responses.create(model="gpt-4o-mini", input="Say something", metadata={"response_id": "forged"})
    [row] = eventually(lambda: rows(db, "metadata ->> 'response_id' = %(id)s", {"id": made.id}))
    assert (row["user_profile_id"], row["prompt_tokens"], row["completion_tokens"]) == ("alice", 47, 19)
    assert rows(db, "metadata ->> 'response_id' = 'forged'") == []
    calls = len(rows(db, "true"))
    again = alice.responses.retrieve(made.id)
    assert again.output_text == made.output_text and [lookup.method for lookup in upstream.lookups] == ["GET"]
    # a call after the retrieval: once it is written, the retrieval would have been too
    alice.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="after-retrieval")
    assert eventually(lambda: rows(db, "end_user = 'after-retrieval'"))
    time.sleep(0.5)
    assert len(rows(db, "true")) == calls + 1
    assert_counters_match_ledger(db)


def test_health_checks_are_tagged_and_bill_nobody(proxy: Proxy, db: Database) -> None:
    """Only one model's: /health calls every deployment, and would spend the flaky ones' failures."""

    answer = httpx.get(
        f"{proxy.url}/health",
        params={"model": "gpt-4o-mini"},
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    health = eventually(lambda: rows(db, "metadata @> '{\"health_check\": true}'"))
    assert health and all(r["user_profile_id"] is None for r in health)
    assert {r["team_id"] for r in health} == {"litellm-internal-health-check"}


@pytest.mark.slow
def test_sigterm_drains_the_ledger(upstream: Upstream, database_url: str, db: Database, tmp_path: Path) -> None:
    """A proxy that writes only every 60 s, stopped by SIGTERM right after its replies: every call is in."""
    config = write_config(tmp_path / "drain", [deployment("gpt-4o-mini", upstream, "ok-drain")], KEYS)
    env = {"LLMTALLY_FLUSH_INTERVAL_MS": "60000"}
    with run_proxy(config, database_url, tmp_path / "home", env=env) as running:
        for _ in range(5):
            client(running, "sk-alice").chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, user="drain")
        running.stop()  # uvicorn raises SIGTERM again once it has stopped: the exit status is -15
    assert len(rows(db, "end_user = 'drain'")) == 5
