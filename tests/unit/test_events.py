"""Payload → event, sanitising and cost resolution: pure functions, no database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal

import litellm
import pydantic
import pytest

from llmtally.domain.cost import resolve_cost
from llmtally.domain.events import UsageEvent
from llmtally.integrations.litellm.callback import LedgerCallback, event_from_payload
from llmtally.integrations.litellm.prices import LITELLM_PRICES
from llmtally.ledger.sanitize import clean_text, to_json

MESSAGES = [{"role": "user", "content": "hi"}]


async def capture(**kwargs: object) -> list[UsageEvent]:
    """Drive LiteLLM for real with our callback registered; return the events it produced."""
    events: list[UsageEvent] = []
    callback = LedgerCallback(events.append)
    litellm.callbacks.append(callback)
    try:
        try:
            result = await litellm.acompletion(model=kwargs.pop("model", "gpt-4o-mini"), messages=MESSAGES, **kwargs)
            if kwargs.get("stream"):
                async for _ in result:
                    pass
        except litellm.exceptions.APIError:
            pass
        except litellm.RateLimitError:
            pass
        for _ in range(50):
            if events:
                break
            await asyncio.sleep(0.01)
    finally:
        litellm.logging_callback_manager.remove_callback_from_all_lists(callback)
    return events


async def test_success_payload_becomes_a_typed_event() -> None:
    meta = {"user_profile_id": "google_1", "session_id": "s-1", "feature": "chat"}
    [event] = await capture(user="raw-user", metadata=dict(meta), mock_response="hello")  # LiteLLM mutates it
    assert (event.user_profile_id, event.session_id, event.end_user) == ("google_1", "s-1", "raw-user")
    assert (event.model, event.provider, event.status, event.stream) == ("gpt-4o-mini", "openai", "success", False)
    assert (event.prompt_tokens, event.completion_tokens, event.tokens_used) == (10, 20, 30)
    assert event.reported_cost == pytest.approx(1.35e-05)
    assert event.metadata == meta, "LiteLLM's own hidden_params are not the app's metadata"
    assert event.created_at.tzinfo is not None and event.latency_ms is not None


async def test_failure_payload_carries_error_class_and_no_tokens() -> None:
    error = litellm.RateLimitError("too fast", llm_provider="openai", model="gpt-4o-mini")
    [event] = await capture(mock_response=error)
    assert (event.status, event.error_type, event.tokens_used) == ("failure", "RateLimitError", 0)
    assert "too fast" in (event.error or "")


async def test_unmapped_model_reports_no_cost() -> None:
    [event] = await capture(model="openai/not-a-real-model", mock_response="x")
    assert event.model == "not-a-real-model" and not event.reported_cost
    assert resolve_cost(event.model, event.provider, 10, 20, event.reported_cost, prices=LITELLM_PRICES) == (
        None,
        "unpriced",
    )


def test_a_broken_payload_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    def sink(event: UsageEvent) -> None:
        raise RuntimeError("queue exploded")

    LedgerCallback(sink).log_success_event({"model": "m", "litellm_call_id": "c"}, None, None, None)
    assert "could not record LiteLLM call c" in caplog.text


def test_event_from_a_minimal_payload_has_safe_defaults() -> None:
    event = event_from_payload({"litellm_call_id": "c1"}, None, None, None, "success")
    assert (event.model, event.provider, event.tokens_used, event.reported_cost) == ("unknown", "unknown", 0, None)


@pytest.mark.parametrize(
    ("reported", "model", "expected"),
    [
        (0.0042, "gpt-4o-mini", (Decimal("0.0042"), "priced")),
        (0.0, "gpt-4o-mini", (1000 * Decimal("1.5E-7") + 500 * Decimal("6E-7"), "recomputed")),
        (None, "gpt-4o-mini", (1000 * Decimal("1.5E-7") + 500 * Decimal("6E-7"), "recomputed")),
        (0.0, "acme-internal", (None, "unpriced")),
        (float("nan"), "acme-internal", (None, "unpriced")),
        (-1.0, "gpt-4o-mini", (1000 * Decimal("1.5E-7") + 500 * Decimal("6E-7"), "recomputed")),
    ],
)
def test_resolve_cost(reported: float | None, model: str, expected: tuple[Decimal | None, str]) -> None:
    assert resolve_cost(model, "openai", 1000, 500, reported, prices=LITELLM_PRICES) == expected


def test_zero_tokens_on_a_priced_model_is_a_priced_zero() -> None:
    assert resolve_cost("gpt-4o-mini", "openai", 0, 0, 0.0, prices=LITELLM_PRICES) == (Decimal(0), "priced")


@pytest.mark.parametrize("reported", [0.0, None])
def test_a_call_without_tokens_on_an_unmapped_model_cost_nothing(reported: float | None) -> None:
    """A failure refused before any token was used is $0, not an unknown cost."""
    assert resolve_cost("acme-internal", "acme", 0, 0, reported, prices=LITELLM_PRICES) == (Decimal(0), "priced")
    assert resolve_cost("acme-internal", "acme", 0, 0, reported, cached_tokens=5, prices=LITELLM_PRICES) == (
        None,
        "unpriced",
    )


def test_to_json_accepts_what_postgres_would_reject() -> None:
    class Model(pydantic.BaseModel):
        text: str

    payload = {
        "nul": "a\x00b",
        "surrogate": "x\ud800y",
        "bytes": b"\x00\xff",
        "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "model": Model(text="hi"),
        "money": Decimal("1.10"),
        "set": {1},
        "escaped": "literal \\u0000 stays text",
        "nan": float("nan"),
    }
    text = to_json(payload)
    assert text is not None
    assert "\\u0000" not in text.replace("\\\\u0000", "")
    decoded = json.loads(text)
    assert decoded["escaped"] == "literal \\u0000 stays text"
    assert text.encode("utf-8")


def test_to_json_round_trips_plain_content() -> None:
    assert json.loads(to_json({"role": "user", "content": "héllo"}) or "") == {"role": "user", "content": "héllo"}
    assert to_json(None) is None


def test_clean_text() -> None:
    assert clean_text("a\x00b") == "a\ufffdb"
    assert clean_text("ok") == "ok"
    assert clean_text(None) is None
    assert clean_text("x\udc80") == "x?"


async def test_calls_of_one_session_are_separate_calls() -> None:
    """LiteLLM copies metadata["session_id"] into litellm_trace_id: that must not merge a session's calls."""
    first = await capture(mock_response="one", metadata={"user_profile_id": "u", "session_id": "s-1"})
    second = await capture(mock_response="two", metadata={"user_profile_id": "u", "session_id": "s-1"})
    keys = [e.call_key for e in first + second]
    assert len(keys) == 2 and len(set(keys)) == 2, keys
    assert keys == [e.litellm_call_id for e in first + second]


async def test_a_trace_id_given_for_all_attempts_keys_the_call() -> None:
    (event,) = await capture(mock_response="ok", litellm_trace_id="request-7", metadata={"session_id": "s-1"})
    assert event.call_key == "request-7"


def test_a_stream_s_first_token_is_litellm_s_completion_start_time() -> None:
    start = dt.datetime(2026, 3, 1, 12, 0, 0)  # LiteLLM passes naive local times
    end = start + dt.timedelta(seconds=2)
    payload = {"litellm_call_id": "s1", "stream": True, "completion_start_time": start + dt.timedelta(milliseconds=450)}
    assert event_from_payload(payload, None, start, end, "success").first_token_ms == 450
    # LiteLLM sets the first-token time to the end when no chunk came: no first token, not 2,000 ms
    no_chunk = {**payload, "completion_start_time": end}
    assert event_from_payload(no_chunk, None, start, end, "success").first_token_ms is None
    # a call that was not streamed has none either, whatever LiteLLM noted
    assert event_from_payload({**payload, "stream": False}, None, start, end, "success").first_token_ms is None


RESPONSE = {"id": "resp_bGl0ZWxsbTo", "object": "response", "status": "completed", "output": []}


def test_a_responses_call_names_its_response_in_the_metadata_and_a_caller_cannot() -> None:
    made = {"litellm_call_id": "r1", "call_type": "aresponses", "litellm_params": {"metadata": {"feature": "x"}}}
    event = event_from_payload(made, dict(RESPONSE), None, None, "success")
    assert event.metadata == {"feature": "x", "response_id": "resp_bGl0ZWxsbTo"}
    # a caller's own response_id is dropped: only a provider's response names one
    forged = {"litellm_call_id": "c1", "litellm_params": {"metadata": {"response_id": "resp_someone_elses"}}}
    chat = {"id": "chatcmpl-1", "object": "chat.completion", "choices": []}
    assert event_from_payload(forged, chat, None, None, "success").metadata == {}
    assert "response_id" not in event_from_payload(made, None, None, None, "failure").metadata


@pytest.mark.parametrize("call_type", ["aget_responses", "adelete_responses", "get_responses", "alist_input_items"])
def test_a_call_on_a_stored_response_is_not_recorded(call_type: str) -> None:
    events: list[UsageEvent] = []
    callback = LedgerCallback(events.append)
    usage = {"input_tokens": 47, "output_tokens": 19, "total_tokens": 66}
    payload = {"litellm_call_id": "g1", "call_type": call_type, "standard_logging_object": {"prompt_tokens": 47}}
    callback.log_success_event(payload, {**RESPONSE, "usage": usage}, None, None)
    callback.log_failure_event(payload, None, None, None)
    assert events == []  # LiteLLM reports the stored response's usage again: billing it would count it twice
    callback.log_success_event({**payload, "call_type": "aresponses"}, RESPONSE, None, None)
    assert [e.metadata.get("response_id") for e in events] == [RESPONSE["id"]]
