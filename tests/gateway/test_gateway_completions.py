"""/v1/completions (legacy text completions) and /v1/responses (the Responses API) with the real openai SDK
and curl; each ledger row compared with what the local upstream billed, at the price map's prices."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import litellm
import openai
import pytest

from llmtally.budgets import set_budget
from tests.gateway.conftest import Caller
from tests.support.gateway import RunningGateway
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import CACHED_TOKENS, COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, Billed, Upstream

pytestmark = [
    # LiteLLM's logging of a streamed response dumps a usage dict where its model expects ResponseAPIUsage:
    # a warning outside tests; as an error here it would make LiteLLM drop the payload it logs.
    pytest.mark.filterwarnings(r"ignore:Pydantic serializer warnings[\s\S]*ResponseAPIUsage:UserWarning"),
]


def sdk(gateway: RunningGateway, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0)


def async_sdk(gateway: RunningGateway, caller: Caller) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0)


def price(model: str, bill: Billed) -> float:
    """What ``bill`` costs at the price map's prices (cached input at its own price)."""
    prices = litellm.model_cost[model]
    cached_price = prices.get("cache_read_input_token_cost") or prices["input_cost_per_token"]
    usd = (
        (bill.prompt_tokens - bill.cached_tokens) * prices["input_cost_per_token"]
        + bill.cached_tokens * cached_price
        + bill.completion_tokens * prices["output_cost_per_token"]
    )
    return float(usd)


def the_bill(upstream: Upstream, endpoint: str, asked: int) -> Billed:
    """The one bill of ``endpoint`` made since ``asked`` bills were made."""
    [bill] = [b for b in upstream.billed[asked:] if b.endpoint == endpoint]
    return bill


def assert_row_is_the_bill(row: dict[str, Any], bill: Billed, caller: Caller, model: str, provider: str) -> None:
    assert (row["status"], row["model"], row["provider"]) == ("success", model, provider)
    assert (row["user_profile_id"], row["end_user"]) == (caller.user_id, caller.user_id)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (bill.prompt_tokens, bill.completion_tokens)
    assert row["cached_tokens"] == bill.cached_tokens and row["usage_source"] == "provider"
    assert float(row["total_cost"]) == pytest.approx(price(model, bill), rel=1e-9)
    assert row["metadata"]["via"] == "gateway" and row["metadata"]["api_token"] == caller.token[:10]


# -- /v1/completions ----------------------------------------------------------------------------------
def test_a_text_completion_calls_the_upstreams_completions_and_is_recorded_as_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    asked = len(upstream.billed)
    with sdk(gateway, caller) as client:
        reply = client.completions.create(model="instruct", prompt="Say something", max_tokens=30)
    assert reply.object == "text_completion" and reply.choices[0].text == REPLY
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (47, 19)
    bill = the_bill(upstream, "completions", asked)
    assert bill.body["prompt"] == "Say something" and bill.body["max_tokens"] == 30
    assert bill.body["user"] == caller.user_id and "metadata" not in bill.body
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, bill, caller, "gpt-3.5-turbo-instruct", "text-completion-openai")
    assert not row["stream"] and gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


@pytest.mark.parametrize("include_usage", [True, False])
async def test_a_streamed_text_completion_gets_its_text_and_the_usage_chunk_only_if_asked(
    gateway: RunningGateway, caller: Caller, upstream: Upstream, include_usage: bool
) -> None:
    asked = len(upstream.billed)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    async with async_sdk(gateway, caller) as client:
        stream = await client.completions.create(model="instruct", prompt="Say something", stream=True, **options)
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text or "" for c in chunks if c.choices) == REPLY
    usage = [c.usage for c in chunks if c.usage is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usage] == ([(47, 19)] if include_usage else [])
    bill = the_bill(upstream, "completions", asked)
    assert bill.stream and bill.body["stream_options"] == {"include_usage": True}  # asked for, always
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, bill, caller, "gpt-3.5-turbo-instruct", "text-completion-openai")
    assert row["stream"] and gateway.reservations(caller.user_id) == 0


def test_a_text_completion_of_a_chat_model_goes_through_its_chat_endpoint(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    asked = len(upstream.billed)
    with sdk(gateway, caller) as client:
        reply = client.completions.create(model="gpt-4o-mini", prompt=["first", "second"], n=1)
    assert reply.choices[0].text == REPLY
    [bill] = upstream.billed[asked:]
    assert bill.endpoint == "chat"  # LiteLLM asks a chat model its chat completions
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, bill, caller, "gpt-4o-mini", "openai")


def test_the_demo_model_answers_a_text_completion(gateway: RunningGateway, caller: Caller) -> None:
    with sdk(gateway, caller) as client:
        reply = client.completions.create(model="llmtally/demo", prompt="Hello")
    assert "offline demo model" in reply.choices[0].text
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert (row["model"], row["provider"], row["status"], row["user_profile_id"]) == (
        "demo",
        "llmtally",
        "success",
        caller.user_id,
    )
    assert reply.usage is not None and row["completion_tokens"] == reply.usage.completion_tokens
    assert row["total_cost"] > 0 and gateway.reservations(caller.user_id) == 0


# -- /v1/responses ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["gpt-4o-mini", "cached"])
def test_a_response_calls_the_upstreams_responses_and_its_usage_is_recorded_as_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream, model: str
) -> None:
    asked = len(upstream.billed)
    with sdk(gateway, caller) as client:
        reply = client.responses.create(
            model=model,
            input=[{"role": "user", "content": "Say something"}],
            instructions="Be brief",
            max_output_tokens=40,
            metadata={"tags": ["nightly"]},
        )
    assert reply.object == "response" and reply.output_text == REPLY
    assert reply.usage is not None and (reply.usage.input_tokens, reply.usage.output_tokens) == (47, 19)
    bill = the_bill(upstream, "responses", asked)
    assert bill.cached_tokens == (CACHED_TOKENS if model == "cached" else 0)
    assert bill.body["instructions"] == "Be brief" and bill.body["max_output_tokens"] == 40
    # llmtally's metadata (the key's prefix, the tags) is not sent to the provider, which would store it
    assert "metadata" not in bill.body and caller.token[:10] not in json.dumps(bill.body)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, bill, caller, "gpt-4o-mini", "openai")
    assert row["metadata"]["tags"] == ["nightly"] and gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


async def test_a_streamed_response_sends_typed_events_and_is_recorded_with_the_providers_usage(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    asked = len(upstream.billed)
    async with async_sdk(gateway, caller) as client:
        stream = await client.responses.create(model="gpt-4o-mini", input="Say something", stream=True)
        events = [event async for event in stream]
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == REPLY
    completed = events[-1].response
    assert completed.usage is not None and (completed.usage.input_tokens, completed.usage.output_tokens) == (47, 19)
    bill = the_bill(upstream, "responses", asked)
    assert bill.stream
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert_row_is_the_bill(row, bill, caller, "gpt-4o-mini", "openai")  # usage_source "provider", not estimated
    assert row["stream"] and gateway.reservations(caller.user_id) == 0


def test_the_demo_model_answers_a_response_bridged_to_its_chat(gateway: RunningGateway, caller: Caller) -> None:
    with sdk(gateway, caller) as client:
        reply = client.responses.create(model="llmtally/demo", input="Hello")
    assert "offline demo model" in reply.output_text
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert (row["model"], row["provider"], row["status"]) == ("demo", "llmtally", "success")
    assert reply.usage is not None and row["completion_tokens"] == reply.usage.output_tokens > 0
    assert row["total_cost"] > 0


# -- refusals -----------------------------------------------------------------------------------------
def post(gateway: RunningGateway, caller: Caller, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}{path}", json=body, headers=caller.headers, timeout=20)


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}, body
    return dict(body["error"])


@pytest.mark.parametrize(
    ("path", "body", "param", "words"),
    [
        ("/completions", {"model": "instruct"}, "prompt", "non-empty string"),
        ("/completions", {"model": "instruct", "prompt": [1, "x"]}, "prompt", "token arrays"),
        ("/completions", {"model": "instruct", "prompt": "x", "max_tokens": "10"}, "max_tokens", "whole number"),
        ("/completions", {"model": "instruct", "prompt": "x", "n": 0}, "n", "at least 1"),
        ("/completions", {"prompt": "x"}, "model", "model parameter"),
        ("/responses", {"model": "gpt-4o-mini"}, "input", "non-empty"),
        ("/responses", {"model": "gpt-4o-mini", "input": ["hi"]}, "input[0]", "must be an object"),
        ("/responses", {"model": "gpt-4o-mini", "input": "x", "instructions": 3}, "instructions", "string"),
        ("/responses", {"model": "gpt-4o-mini", "input": "x", "stream": 1}, "stream", "true or false"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    gateway: RunningGateway, caller: Caller, path: str, body: Any, param: str, words: str
) -> None:
    error = error_of(post(gateway, caller, path, body), 400)
    assert (error["type"], error["param"]) == ("invalid_request_error", param) and words in error["message"]


@pytest.mark.parametrize(("path", "field"), [("/completions", "prompt"), ("/responses", "input")])
def test_a_key_limited_to_other_models_and_a_spent_budget_are_refused_before_any_call(
    gateway: RunningGateway, caller: Caller, upstream: Upstream, path: str, field: str
) -> None:
    from llmtally.api_tokens import create_token

    token, _ = create_token(gateway.db, caller.user_id, name="demo only", models=["llmtally/demo"])
    limited = Caller(caller.user_id, token)
    asked = len(upstream.billed)
    assert error_of(post(gateway, limited, path, {"model": "gpt-4o-mini", field: "x"}), 403)["code"] == (
        "model_not_allowed"
    )
    set_budget(gateway.db, caller.user_id, "monthly", limit_usd=Decimal("0.000001"))
    response = post(gateway, caller, path, {"model": "gpt-4o-mini", field: "x"})
    assert error_of(response, 429)["code"] == "budget_exceeded" and response.headers["x-should-retry"] == "false"
    assert len(upstream.billed) == asked and gateway.reservations(caller.user_id) == 0
    assert gateway.db.fetch_all("select 1 from request_logs where user_profile_id = %s", (caller.user_id,)) == []


@pytest.mark.parametrize(("path", "field"), [("/completions", "prompt"), ("/responses", "input")])
def test_an_upstream_500_is_502_and_recorded_as_a_failure(
    gateway: RunningGateway, caller: Caller, path: str, field: str
) -> None:
    error = error_of(post(gateway, caller, path, {"model": "broken", field: "x"}), 502)
    assert error["code"] == "upstream_failed" and "upstream exploded" in error["message"]
    [row] = gateway.wait_for_rows(caller.user_id, 1, attempt_count=2)  # the try and its retry
    assert (row["status"], row["user_profile_id"], row["total_cost"]) == ("failure", caller.user_id, 0)
    assert gateway.reservations(caller.user_id) == 0


def text_of(path: str, data: dict[str, Any]) -> str:
    if path == "/completions":
        return str(data["choices"][0].get("text") or "")
    return str(data.get("delta") or "") if data.get("type") == "response.output_text.delta" else ""


@pytest.mark.parametrize(("path", "field"), [("/completions", "prompt"), ("/responses", "input")])
def test_a_client_that_leaves_mid_stream_is_recorded_as_cancelled_with_what_it_received(
    gateway: RunningGateway, caller: Caller, path: str, field: str
) -> None:
    body = {"model": "slow", field: "Say something", "stream": True}
    received: list[str] = []
    with httpx.stream("POST", f"{gateway.base_url}{path}", json=body, headers=caller.headers) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: ") and (text := text_of(path, json.loads(line[6:]))):
                received.append(text)
            if len(received) == 3:
                break
    left_at = time.monotonic()
    [row] = gateway.wait_for_rows(caller.user_id, 1, status="cancelled")
    assert time.monotonic() - left_at < 3
    assert row["response"] == {"partial": "".join(received)} and row["metadata"]["reason"] == "client disconnected"
    assert 0 < row["completion_tokens"] < COMPLETION_TOKENS and row["prompt_tokens"] < PROMPT_TOKENS
    assert gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_a_response_stream_whose_upstream_fails_mid_stream_ends_with_an_error_event(
    gateway: RunningGateway, caller: Caller
) -> None:
    body = {"model": "midfail", "input": "Say something", "stream": True}
    with httpx.stream("POST", f"{gateway.base_url}/responses", json=body, headers=caller.headers) as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert "".join(text_of("/responses", e) for e in events) == "the upstream"
    assert events[-1]["type"] == "error" and "event: error" in lines and "data: [DONE]" not in lines
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["status"] == "failure" and gateway.reservations(caller.user_id) == 0
