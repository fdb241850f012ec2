"""Real clients against the gateway: the openai SDK (sync, async, streamed) and curl; the ledger against the bill."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import openai
import pytest

from llmtally.app.gateway.api import CREATED
from tests.gateway.conftest import Caller
from tests.support.gateway import RunningGateway
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import COMPLETION_TOKENS, EMBEDDING_DIMENSIONS, PROMPT_TOKENS, REPLY, Upstream

MESSAGES: list[Any] = [{"role": "user", "content": "how many tokens is this?"}]


def sdk(gateway: RunningGateway, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0)


def async_sdk(gateway: RunningGateway, caller: Caller) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0)


def billed(upstream: Upstream, response_id: str) -> Any:
    [bill] = [b for b in upstream.billed if b.id == response_id]
    return bill


def assert_row_is_the_bill(row: dict[str, Any], bill: Any, caller: Caller) -> None:
    assert (row["status"], row["model"], row["provider"]) == ("success", "gpt-4o-mini", "openai")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (bill.prompt_tokens, bill.completion_tokens)
    assert row["usage_source"] == "provider" and row["total_cost"] > 0
    assert row["metadata"]["api_token"] == caller.token[:10] and caller.token not in json.dumps(row, default=str)


def test_the_sync_sdk_gets_the_reply_and_the_ledger_row_is_what_the_upstream_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    with sdk(gateway, caller) as client:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert reply.choices[0].message.content == REPLY
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, billed(upstream, reply.id), caller)
    assert row["attempt_count"] == 1 and gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


async def test_the_async_sdk_streams_and_gets_the_usage_chunk_it_asked_for(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    async with async_sdk(gateway, caller) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    bill = billed(upstream, chunks[0].id)
    assert bill.stream and row["stream"]
    assert_row_is_the_bill(row, bill, caller)
    assert gateway.reservations(caller.user_id) == 0


async def test_a_stream_without_include_usage_gets_no_usage_chunk_but_is_recorded_as_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    async with async_sdk(gateway, caller) as client:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert all(c.choices and c.usage is None for c in chunks)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, billed(upstream, chunks[0].id), caller)  # the gateway asked the upstream


async def test_async_sdk_without_stream_and_embeddings(gateway: RunningGateway, caller: Caller) -> None:
    async with async_sdk(gateway, caller) as client:
        reply = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=50)
        vectors = await client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
    assert reply.choices[0].message.content == REPLY
    assert [len(v.embedding) for v in vectors.data] == [EMBEDDING_DIMENSIONS] * 2
    assert vectors.usage.prompt_tokens == PROMPT_TOKENS
    rows = gateway.wait_for_rows(caller.user_id, 2)
    embedding = next(r for r in rows if r["model"] == "text-embedding-3-small")
    assert (embedding["status"], embedding["prompt_tokens"], embedding["completion_tokens"]) == ("success", 47, 0)
    assert embedding["total_cost"] > 0 and gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_models_lists_the_config_and_the_demo_model(gateway: RunningGateway, caller: Caller) -> None:
    with sdk(gateway, caller) as client:
        ids = [m.id for m in client.models.list()]
        demo = client.models.retrieve("llmtally/demo")
    assert ids[0] == "gpt-4o-mini" and "llmtally/demo" in ids and "backup" in ids
    assert (demo.id, demo.created, demo.owned_by) == ("llmtally/demo", CREATED, "llmtally")


def test_the_offline_demo_model_answers_through_the_router(gateway: RunningGateway, caller: Caller) -> None:
    with sdk(gateway, caller) as client:
        reply = client.chat.completions.create(model="llmtally/demo", messages=[{"role": "user", "content": "hello"}])
    assert "offline demo model" in (reply.choices[0].message.content or "")
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert (row["model"], row["provider"], row["status"]) == ("demo", "llmtally", "success")
    assert row["completion_tokens"] == reply.usage.completion_tokens and row["total_cost"] > 0


def curl(*args: str) -> str:
    done = subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, text=True, check=True)
    return done.stdout


def test_curl_plain_and_streamed(gateway: RunningGateway, caller: Caller, upstream: Upstream) -> None:
    url = f"{gateway.base_url}/chat/completions"
    auth = f"Authorization: Bearer {caller.token}"
    body = json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES})
    reply = json.loads(curl(url, "-H", auth, "-H", "Content-Type: application/json", "-d", body))
    assert reply["choices"][0]["message"]["content"] == REPLY
    streamed = curl(
        "-N", url, "-H", auth, "-d", json.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True})
    )
    events = [line[len("data: ") :] for line in streamed.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == REPLY
    rows = gateway.wait_for_rows(caller.user_id, 2)
    for row, response_id in zip(rows, (reply["id"], chunks[0]["id"]), strict=True):
        assert_row_is_the_bill(row, billed(upstream, response_id), caller)


@pytest.mark.parametrize("model", ["flaky", "primary"])
def test_retries_and_fallbacks_are_attempts_of_one_call(
    gateway: RunningGateway, caller: Caller, upstream: Upstream, model: str
) -> None:
    with sdk(gateway, caller) as client:
        reply = client.chat.completions.create(model=model, messages=MESSAGES)
    assert reply.choices[0].message.content == REPLY
    # flaky: one failure, then the retry answers; primary: the first try and its retry fail, then the fallback
    attempts = {"flaky": 2, "primary": 3}[model]
    [row] = gateway.wait_for_rows(caller.user_id, 1, status="success", attempt_count=attempts)
    assert row["failed_attempts"] == attempts - 1
    assert (row["prompt_tokens"], row["completion_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    if model == "primary":
        assert billed(upstream, reply.id).behaviour == "ok-backup"  # the fallback answered
    assert gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_tags_from_metadata_and_the_header_are_stored_with_the_call(gateway: RunningGateway, caller: Caller) -> None:
    with sdk(gateway, caller) as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_body={"metadata": {"tags": ["nightly", "eu"], "user_profile_id": "someone-else"}},
            extra_headers={"x-llmtally-tags": "reports, nightly"},
        )
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["metadata"]["tags"] == ["nightly", "eu", "reports"]
    assert row["user_profile_id"] == caller.user_id and "someone-else" not in json.dumps(row["metadata"])
