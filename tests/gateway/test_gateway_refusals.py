"""What the gateway refuses, and how: OpenAI-shaped errors with the status a client expects, nothing billed."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from llmtally.api_tokens import create_token, revoke_token, shown_prefix
from llmtally.budgets import set_budget, set_rate_limit
from tests.gateway.conftest import Caller
from tests.support.gateway import RunningGateway
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import REPLY, Upstream

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES}


def post(gateway: RunningGateway, caller: Caller | None, body: Any, path: str = "/chat/completions") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json", **(caller.headers if caller else {})}
    return httpx.post(f"{gateway.base_url}{path}", content=content, headers=headers, timeout=20)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}, body
    assert "Traceback" not in response.text
    return dict(body["error"])


def test_no_key_a_bad_key_and_a_session_token_are_401(gateway: RunningGateway, caller: Caller) -> None:
    assert error_of(post(gateway, None, CHAT), 401)["code"] == "invalid_api_key"
    for header in ("Bearer lt_" + "x" * 43, "Basic abc", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"):
        response = httpx.post(f"{gateway.base_url}/chat/completions", json=CHAT, headers={"Authorization": header})
        assert error_of(response, 401)["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="lt_" + "y" * 43, max_retries=0)
    with bad as client, pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_the_key_is_checked_before_the_request_whatever_is_wrong_with_it(
    gateway: RunningGateway, caller: Caller
) -> None:
    """A chat completion checks its key and reserves in one statement only when the request is sound; any
    other is answered as every route answers: 401 for the key first, then 400 or 403, nothing reserved."""
    bad_key = Caller(caller.user_id, "lt_" + "z" * 43)
    narrow, _ = create_token(gateway.db, caller.user_id, name="narrow", models=["llmtally/demo"])
    wrong = [
        b"{not json",
        {**CHAT, "messages": []},
        {**CHAT, "model": "gpt-5-unlisted"},
        {**CHAT, "max_tokens": -1},
        {**CHAT, "metadata": {"tags": "not-a-list"}},
        {**CHAT, "user": "\x00"},
        CHAT,
    ]
    for body in wrong:
        assert error_of(post(gateway, bad_key, body), 401)["code"] == "invalid_api_key", body
    assert error_of(post(gateway, caller, b"{not json"), 400)["type"] == "invalid_request_error"
    assert error_of(post(gateway, caller, {**CHAT, "model": "gpt-5-unlisted"}), 403)["code"] == "model_not_allowed"
    assert error_of(post(gateway, Caller(caller.user_id, narrow), CHAT), 403)["code"] == "model_not_allowed"
    assert gateway.reservations(caller.user_id) == 0
    assert gateway.db.fetch_all("select 1 from refusals where user_id = %s", (caller.user_id,)) == []
    # A `user` this key may not name is left out, as from any key without end users: the call goes on.
    assert post(gateway, caller, {**CHAT, "user": "\x00"}).status_code == 200
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["end_user"] == caller.user_id


def test_a_revoked_key_is_refused_at_once(gateway: RunningGateway, caller: Caller) -> None:
    assert post(gateway, caller, CHAT).status_code == 200
    revoke_token(gateway.db, shown_prefix(caller.token))
    error = error_of(post(gateway, caller, CHAT), 401)
    assert "revoked" in error["message"]
    assert len(gateway.wait_for_rows(caller.user_id, 1)) == 1  # only the call made before


def test_a_budget_refusal_is_429_budget_exceeded_not_to_retry_and_nothing_is_called(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    set_budget(gateway.db, caller.user_id, "monthly", limit_usd=Decimal("0.000001"))
    asked = len(upstream.billed)
    response = post(gateway, caller, CHAT)
    error = error_of(response, 429)
    assert (error["type"], error["code"]) == ("budget_exceeded", "budget_exceeded")
    assert error["message"].startswith("monthly budget exceeded") and "limit $0.000001" in error["message"]
    assert response.headers["x-should-retry"] == "false"
    retrying = openai.OpenAI(base_url=gateway.base_url, api_key=caller.token)  # the SDK's own retries on
    with retrying as client, pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert refused.value.code == "budget_exceeded"
    assert len(upstream.billed) == asked  # the upstream was never asked, not even by a retry
    assert gateway.db.fetch_all("select 1 from request_logs where user_profile_id = %s", (caller.user_id,)) == []
    assert gateway.reservations(caller.user_id) == 0


def test_a_rate_limit_is_429_with_retry_after(gateway: RunningGateway, caller: Caller) -> None:
    set_rate_limit(gateway.db, caller.user_id, rpm=1, tpm=None)
    assert post(gateway, caller, CHAT).status_code == 200
    response = post(gateway, caller, CHAT)
    error = error_of(response, 429)
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert 1 <= int(response.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        (b'{"model": "gpt-4o-mini", "messages": [', None, "not valid JSON"),
        (b"", None, "empty"),
        (b"[1, 2]", None, "JSON object"),
        ({"messages": MESSAGES}, "model", "model parameter"),
        ({"model": "gpt-4o-mini"}, "messages", "non-empty array"),
        ({"model": "gpt-4o-mini", "messages": ["hi"]}, "messages[0]", "role"),
        ({**CHAT, "max_tokens": -1}, "max_tokens", "zero or more"),
        ({**CHAT, "stream": "yes"}, "stream", "true or false"),
        ({"model": "text-embedding-3-small", "input": []}, "input", "non-empty"),
        ({**CHAT, "metadata": {"tags": "nightly"}}, "metadata.tags", "array of strings"),
        ({**CHAT, "metadata": {"tags": ["x" * 65]}}, "metadata.tags", "at most 64 characters"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    gateway: RunningGateway, caller: Caller, body: Any, param: str | None, words: str
) -> None:
    path = "/embeddings" if isinstance(body, dict) and "input" in body else "/chat/completions"
    error = error_of(post(gateway, caller, body, path), 400)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert words in error["message"]


def test_a_model_not_configured_is_403_and_unknown_paths_are_openai_shaped(
    gateway: RunningGateway, caller: Caller
) -> None:
    error = error_of(post(gateway, caller, {**CHAT, "model": "gpt-5-unlisted"}), 403)
    assert (error["code"], error["param"]) == ("model_not_allowed", "model") and "GET /v1/models" in error["message"]
    assert error_of(post(gateway, caller, {}, "/nothing/here"), 404)["code"] == "not_found"
    assert error_of(httpx.get(f"{gateway.base_url}/chat/completions", headers=caller.headers), 405)
    retrieve = httpx.get(f"{gateway.base_url}/models/gpt-5-unlisted", headers=caller.headers)
    assert error_of(retrieve, 404)["code"] == "model_not_found"


def test_a_key_limited_to_some_models_lists_and_uses_only_those(gateway: RunningGateway, caller: Caller) -> None:
    token, record = create_token(gateway.db, caller.user_id, name="only mini", models=["gpt-4o-mini", "llmtally/demo"])
    assert record.models == ["gpt-4o-mini", "llmtally/demo"]
    limited = Caller(caller.user_id, token)
    listed = httpx.get(f"{gateway.base_url}/models", headers=limited.headers).json()
    assert sorted(m["id"] for m in listed["data"]) == ["gpt-4o-mini", "llmtally/demo"]
    everything = httpx.get(f"{gateway.base_url}/models", headers=caller.headers).json()
    assert "backup" in {m["id"] for m in everything["data"]}  # the unlimited key of the same user sees all
    error = error_of(post(gateway, limited, {**CHAT, "model": "backup"}), 403)
    assert error["code"] == "model_not_allowed" and "backup" in error["message"]
    assert error_of(httpx.get(f"{gateway.base_url}/models/backup", headers=limited.headers), 404)
    assert error_of(post(gateway, limited, {"model": "text-embedding-3-small", "input": "x"}, "/embeddings"), 403)
    assert post(gateway, limited, CHAT).status_code == 200
    assert len(gateway.wait_for_rows(caller.user_id, 1)) == 1  # only the allowed call reached the ledger


def test_litellm_parameters_and_the_user_field_of_a_client_are_not_passed_on(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    body = {**CHAT, "mock_response": "forged", "api_base": "http://127.0.0.1:9/v1", "user": "someone-else"}
    body["metadata"] = {"user_profile_id": "someone-else"}
    reply = post(gateway, caller, body).json()
    assert reply["choices"][0]["message"]["content"] == REPLY and any(b.id == reply["id"] for b in upstream.billed)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["end_user"] == caller.user_id and "someone-else" not in json.dumps(row, default=str)


def test_an_upstream_500_is_502_and_recorded_as_a_failure(gateway: RunningGateway, caller: Caller) -> None:
    error = error_of(post(gateway, caller, {**CHAT, "model": "broken"}), 502)
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_failed")
    assert "upstream exploded" in error["message"]
    [row] = gateway.wait_for_rows(caller.user_id, 1, attempt_count=2)  # the try and its retry
    assert (row["status"], row["failed_attempts"], row["total_cost"]) == ("failure", 2, 0)
    assert gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_a_client_that_leaves_mid_stream_is_recorded_as_cancelled_with_what_it_received(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    body = {"model": "slow", "messages": MESSAGES, "stream": True}
    received: list[str] = []
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", json=body, headers=caller.headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                received.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
            if len(received) == 3:
                break  # leaves: the connection closes with the stream
    left_at = time.monotonic()
    [row] = gateway.wait_for_rows(caller.user_id, 1, status="cancelled")
    assert time.monotonic() - left_at < 3  # recorded when the client left, not when the upstream ended
    assert row["response"] == {"partial": "".join(received)} and row["usage_source"] == "estimated"
    assert 0 < row["completion_tokens"] < 19 and row["metadata"]["reason"] == "client disconnected"
    assert gateway.reservations(caller.user_id) == 0
    time.sleep(0.5)
    [still] = gateway.wait_for_rows(caller.user_id, 1)
    assert still["status"] == "cancelled"
    assert_counters_match_ledger(gateway.db)


def test_a_stream_whose_upstream_fails_before_the_first_chunk_is_502_json(
    gateway: RunningGateway, caller: Caller
) -> None:
    response = post(gateway, caller, {**CHAT, "model": "broken", "stream": True})
    assert response.headers["content-type"].startswith("application/json")
    assert error_of(response, 502)["code"] == "upstream_failed"
    [row] = gateway.wait_for_rows(caller.user_id, 1, attempt_count=2)
    assert row["status"] == "failure" and gateway.reservations(caller.user_id) == 0


async def test_concurrent_requests_never_spend_past_the_budget(gateway: RunningGateway, caller: Caller) -> None:
    # A prompt the tokenizer counts above the upstream's 47 tokens, and max_tokens equal to its 19: each
    # reservation covers what the call is billed, so the budget is a bound on what is spent.
    words = " ".join(f"word{i}" for i in range(60))
    messages = [{"role": "user", "content": words}]
    one = Decimal(str(47 * 0.15e-6 + 19 * 0.6e-6))  # gpt-4o-mini's price of one billed call
    limit = (one * Decimal("5.5")).quantize(Decimal("0.000001"))
    set_budget(gateway.db, caller.user_id, "monthly", limit_usd=limit)
    async with openai.AsyncOpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0) as client:

        async def ask() -> str:
            try:
                await client.chat.completions.create(model="gpt-4o-mini", messages=messages, max_tokens=19)
            except openai.RateLimitError as exc:
                return str(exc.code)
            return "ok"

        outcomes = await asyncio.gather(*(ask() for _ in range(30)))
    admitted = outcomes.count("ok")
    assert 1 <= admitted <= 5 and outcomes.count("budget_exceeded") == 30 - admitted
    rows = gateway.wait_for_rows(caller.user_id, admitted)
    spent = sum(Decimal(str(r["total_cost"])) for r in rows)
    assert all(r["status"] == "success" for r in rows) and spent <= limit
    assert gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_an_upstream_failing_mid_stream_ends_the_stream_with_an_error_event(
    gateway: RunningGateway, caller: Caller
) -> None:
    body = {"model": "midfail", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", f"{gateway.base_url}/chat/completions", json=body, headers=caller.headers) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    *chunks, error = (json.loads(e) for e in events[:-1])
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "the upstream"
    assert set(error) == {"error"} and "mid-stream" in error["error"]["message"]
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["status"] == "failure" and gateway.reservations(caller.user_id) == 0
