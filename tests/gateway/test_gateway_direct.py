"""Direct calls: chat completions the gateway sends to an OpenAI-compatible upstream itself, not through
LiteLLM's Router. Each is compared with the same call through the Router (``LLMTALLY_GATEWAY_DIRECT=false``),
against the same upstream: the client gets the same reply and the ledger the same row. The upstream's log
of each request's HTTP client (``User-Agent``) tells which path made it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmtally.api_tokens import create_token
from tests.gateway.conftest import Caller, running_gateway
from tests.support.cluster import Cluster
from tests.support.gateway import RunningGateway
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, Upstream

MESSAGES: list[Any] = [{"role": "user", "content": "how many tokens is this?"}]
DIRECT_AGENT = "Python/3"  # aiohttp, the gateway's own client; LiteLLM's Router sends through the openai SDK's
ROUTER_AGENT = "AsyncOpenAI/Python"
# What must be the same in a row, whichever path made the call (ids, times and the user differ).
SAME = (
    "status",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "tokens_used",
    "cached_tokens",
    "reasoning_tokens",
    "total_cost",
    "cost_status",
    "usage_source",
    "stream",
    "model_group",
    "attempt_count",
    "failed_attempts",
    "cache_hit",
    "error_type",
)


@pytest.fixture(scope="module")
def routed(
    cluster: Cluster, template: str, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """The same gateway with every call through LiteLLM's Router."""
    home = Path(tmp_path_factory.mktemp("routed"))
    with running_gateway(cluster, template, upstream, home, direct=False) as running:
        yield running


def caller_of(gateway: RunningGateway, name: str) -> Caller:
    user_id = f"password_{name}_{time.monotonic_ns()}"
    gateway.runtime.ledger.upsert_user_sync(user_id)
    token, _ = create_token(gateway.db, user_id, name="direct test")
    return Caller(user_id, token)


def sdk(gateway: RunningGateway, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0)


def agents_since(upstream: Upstream, behaviour: str, before: int) -> list[str]:
    return upstream.agents_of(behaviour)[before:]


def comparable(gateway: RunningGateway, row: dict[str, Any], caller: Caller) -> dict[str, Any]:
    shown = {name: row[name] for name in SAME}
    shown["first_token"] = row["first_token_ms"] is not None
    shown["end_user_is_the_key_owner"] = row["end_user"] == caller.user_id
    assert row["metadata"]["user_profile_id"] == row["user_profile_id"] == caller.user_id
    shown["metadata"] = {k: v for k, v in row["metadata"].items() if k not in ("api_token", "user_profile_id")}
    response = row["response"] or {}
    shown["content"] = [c["message"]["content"] for c in response.get("choices", [])]
    shown["attempts"] = [
        {k: v for k, v in attempt.items() if k not in ("first_token_ms", "latency_ms")}
        | {"first_token": attempt["first_token_ms"] is not None}
        for attempt in attempts_of(gateway, row["call_key"])
    ]
    return shown


def attempts_of(gateway: RunningGateway, call_key: str) -> list[dict[str, Any]]:
    return gateway.db.fetch_all(
        "select model, provider, model_group, model_id, api_base, status, error_type, prompt_tokens,"
        " completion_tokens, tokens_used, cached_tokens, total_cost, cost_status, usage_source, stream,"
        " first_token_ms, latency_ms from request_attempts where call_key = %s order by created_at",
        (call_key,),
    )


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_direct_call_answers_and_records_what_the_router_does(
    gateway: RunningGateway, routed: RunningGateway, upstream: Upstream, stream: bool
) -> None:
    rows, replies = [], []
    for server in (gateway, routed):
        caller = caller_of(server, "same")
        before = len(upstream.agents_of("ok"))
        with sdk(server, caller) as client:
            if stream:
                chunks = list(
                    client.chat.completions.create(
                        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
                    )
                )
                usage = chunks[-1].usage
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                assert chunks[-1].choices == [] and usage is not None
            else:
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.2)
                text, usage = reply.choices[0].message.content or "", reply.usage
                assert usage is not None
        replies.append((text, usage.prompt_tokens, usage.completion_tokens))
        [agent] = agents_since(upstream, "ok", before)
        assert agent.startswith(DIRECT_AGENT if server is gateway else ROUTER_AGENT)
        [row] = server.wait_for_rows(caller.user_id, 1)
        rows.append(comparable(server, row, caller))
        assert server.reservations(caller.user_id) == 0
        assert_counters_match_ledger(server.db)
    assert replies[0] == replies[1] == (REPLY, PROMPT_TOKENS, COMPLETION_TOKENS)
    assert rows[0] == rows[1]
    assert rows[0]["status"] == "success" and rows[0]["total_cost"] > 0 and rows[0]["first_token"] is stream


def test_a_stream_without_include_usage_passes_no_usage_and_records_the_bill(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    before = len(upstream.agents_of("ok"))
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", json=body, headers=caller.headers) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c and c["choices"] for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    assert agents_since(upstream, "ok", before)[0].startswith(DIRECT_AGENT)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert (row["prompt_tokens"], row["completion_tokens"], row["usage_source"]) == (
        PROMPT_TOKENS,
        COMPLETION_TOKENS,
        "provider",
    )


@pytest.mark.parametrize(
    "extra",
    [{"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, {"n": 1}],
    ids=["tools", "n"],
)
def test_a_request_litellm_would_change_goes_through_the_router(
    gateway: RunningGateway, caller: Caller, upstream: Upstream, extra: dict[str, Any]
) -> None:
    before = len(upstream.agents_of("ok"))
    with sdk(gateway, caller) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, **extra)
    [agent] = agents_since(upstream, "ok", before)
    assert agent.startswith(ROUTER_AGENT)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["status"] == "success" and row["prompt_tokens"] == PROMPT_TOKENS


def test_a_request_the_upstream_refuses_is_answered_at_once_with_one_attempt(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    before = len(upstream.agents_of("fail400"))
    with sdk(gateway, caller) as client, pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="refused", messages=MESSAGES)
    body: Any = raised.value.body
    assert body["code"] == "upstream_refused_request" and "refuses this request" in body["message"]
    assert len(agents_since(upstream, "fail400", before)) == 1  # not tried again: the Router would not either
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert (row["status"], row["attempt_count"], row["error_type"]) == ("failure", 1, "BadRequestError")
    assert gateway.reservations(caller.user_id) == 0


def test_a_failed_direct_attempt_is_the_routers_first_and_the_model_then_goes_through_the_router(
    gateway: RunningGateway, upstream: Upstream
) -> None:
    caller = caller_of(gateway, "unreachable")
    with sdk(gateway, caller) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model="unreachable", messages=MESSAGES)
        assert raised.value.status_code == 502
        # num_retries is 1: the direct attempt, then the Router's retry, as the Router alone would try
        [row] = gateway.wait_for_rows(caller.user_id, 1, attempt_count=2)
        assert (row["status"], row["failed_attempts"]) == ("failure", 2)
        attempts = attempts_of(gateway, row["call_key"])
        assert attempts[0]["error_type"] == "APIConnectionError" and len(attempts) == 2
        assert attempts[0]["model_id"] == attempts[1]["model_id"]  # the same deployment, as the Router names it
        # For the Router's cooldown time the model is called through the Router: its retries, its cooldowns.
        before = len(upstream.agents_of("fail500"))
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="broken", messages=MESSAGES)
        first = agents_since(upstream, "fail500", before)
        assert first[0].startswith(DIRECT_AGENT) and first[1].startswith(ROUTER_AGENT) and len(first) == 2
        before = len(first) + before
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(model="broken", messages=MESSAGES)
        assert all(a.startswith(ROUTER_AGENT) for a in agents_since(upstream, "fail500", before))
    assert gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_a_stream_whose_upstream_sends_no_usage_is_counted_and_marked_estimated(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    with sdk(gateway, caller) as client:
        chunks = list(
            client.chat.completions.create(
                model="nousage", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert all(c.usage is None for c in chunks)  # none came, none is made up for the client
    assert agents_since(upstream, "nousage", 0)[-1].startswith(DIRECT_AGENT)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    # LiteLLM's tokenizer's count of the prompt and of the reply: not what the upstream billed
    assert (row["status"], row["usage_source"]) == ("success", "estimated")
    assert 0 < row["prompt_tokens"] < PROMPT_TOKENS and 0 < row["completion_tokens"] < COMPLETION_TOKENS
    assert row["total_cost"] > 0 and gateway.reservations(caller.user_id) == 0
