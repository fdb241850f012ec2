"""Every LiteLLM call lands in request_logs exactly once, against the right user, with an honest cost."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import litellm
import psycopg
import pytest

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database
from llmtally.prices import reprice, set_price
from tests.support.invariants import assert_counters_match_ledger

MESSAGES = [{"role": "user", "content": "What did I spend this month?"}]
GPT_IN, GPT_OUT = Decimal("1.5E-7"), Decimal("6E-7")  # gpt-4o-mini in LiteLLM's bundled map


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[Ledger]:
    litellm.suppress_debug_info = True
    async with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as started:
        yield started


def rows(db: Database, where: str = "true", params: tuple[object, ...] = ()) -> list[dict[str, object]]:
    return db.fetch_all(f"select * from request_logs where {where} order by id", params)


@pytest.mark.sql
async def test_success_is_recorded_once_against_the_metadata_user(ledger: Ledger, db: Database) -> None:
    response = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        user="google_1",
        mock_response="About $3.",
        metadata={"user_profile_id": "google_1", "session_id": "chat-1", "team": "research"},
    )
    assert await ledger.flush()
    [row] = rows(db)
    assert row["user_profile_id"] == "google_1" and row["end_user"] == "google_1"
    assert row["session_id"] == "chat-1"
    assert (row["status"], row["model"], row["provider"], row["stream"]) == ("success", "gpt-4o-mini", "openai", False)
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_used"]) == (10, 20, 30)
    assert row["total_cost"] == 10 * GPT_IN + 20 * GPT_OUT and row["cost_status"] == "priced"
    assert row["messages"] == MESSAGES
    assert row["response"]["choices"][0]["message"]["content"] == "About $3."
    assert row["response"]["id"] == response.id
    assert row["metadata"] == {"user_profile_id": "google_1", "session_id": "chat-1", "team": "research"}
    assert row["latency_ms"] is not None and row["latency_ms"] >= 0
    assert_counters_match_ledger(db)


async def test_stream_is_one_row_at_the_end_with_its_usage(ledger: Ledger, db: Database) -> None:
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        mock_response="one two three four five",
        metadata={"user_profile_id": "github_2"},
    )
    chunks = [chunk async for chunk in stream]
    assert len(chunks) > 1
    await ledger.flush()
    [row] = rows(db)
    assert row["stream"] is True and row["status"] == "success"
    assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
    assert row["total_cost"] == row["prompt_tokens"] * GPT_IN + row["completion_tokens"] * GPT_OUT
    assert_counters_match_ledger(db)


async def test_failure_is_recorded_with_error_class_and_message(ledger: Ledger, db: Database) -> None:
    with pytest.raises(litellm.RateLimitError):
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            metadata={"user_profile_id": "google_1"},
            mock_response=litellm.RateLimitError("slow down", llm_provider="openai", model="gpt-4o-mini"),
        )
    await ledger.flush()
    [row] = rows(db)
    assert row["status"] == "failure" and row["error_type"] == "RateLimitError"
    assert "slow down" in row["error"]
    assert (row["tokens_used"], row["total_cost"]) == (0, 0)
    profile = db.fetch_one("select failure_count, request_count from user_profiles where user_id = 'google_1'")
    assert profile == {"failure_count": 1, "request_count": 1}


async def test_synchronous_completion_is_recorded(ledger: Ledger, db: Database) -> None:
    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, user="u-sync", mock_response="sync")
    deadline = time.monotonic() + 10
    while not rows(db) and time.monotonic() < deadline:  # LiteLLM logs sync calls from a thread
        await asyncio.sleep(0.05)
        await ledger.flush()
    [row] = rows(db)
    assert row["end_user"] == "u-sync" and row["user_profile_id"] is None and row["status"] == "success"


async def test_cancelled_stream_records_the_tokens_produced_so_far(ledger: Ledger, db: Database) -> None:
    call_id = str(uuid.uuid4())
    full = " ".join(["token"] * 200)
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        mock_response=full,
        litellm_call_id=call_id,
        metadata={"user_profile_id": "google_1"},
    )
    partial = ""
    async for chunk in stream:
        partial += chunk.choices[0].delta.content or ""
        if len(partial) > 30:
            break
    await asyncio.sleep(0.3)
    await ledger.flush()
    assert rows(db) == [], "LiteLLM records nothing for an abandoned stream"
    ledger.record_cancelled(
        model="gpt-4o-mini",
        messages=MESSAGES,
        partial_response=partial,
        litellm_call_id=call_id,
        user_profile_id="google_1",
    )
    await ledger.flush()
    [row] = rows(db)
    assert row["status"] == "cancelled" and row["litellm_call_id"] == call_id
    assert 0 < row["completion_tokens"] < 200
    assert row["prompt_tokens"] > 0
    assert row["total_cost"] == row["prompt_tokens"] * GPT_IN + row["completion_tokens"] * GPT_OUT
    assert db.fetch_one("select cancelled_count from user_profiles where user_id='google_1'")["cancelled_count"] == 1


async def test_cancelled_task_is_recorded_by_the_app(ledger: Ledger, db: Database) -> None:
    call_id = str(uuid.uuid4())
    task = asyncio.create_task(
        litellm.acompletion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            mock_response="late",
            mock_delay=5,
            litellm_call_id=call_id,
            metadata={"user_profile_id": "okta_7"},
        )
    )
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ledger.record_cancelled(
        model="gpt-4o-mini", messages=MESSAGES, litellm_call_id=call_id, user_profile_id="okta_7", stream=False
    )
    await ledger.flush()
    [row] = rows(db)
    assert (row["status"], row["completion_tokens"], row["stream"]) == ("cancelled", 0, False)


@pytest.mark.sql
async def test_user_linking_metadata_then_session_map_then_raw_user(ledger: Ledger, db: Database) -> None:
    await ledger.upsert_user("google_9", email="nine@example.com", full_name="Nine", provider="google")
    await ledger.link_session("sess-9", "google_9")
    await litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, user="sess-9", mock_response="a")
    await litellm.acompletion(
        model="gpt-4o-mini", messages=MESSAGES, user="someone", metadata={"session_id": "sess-9"}, mock_response="b"
    )
    await litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, user="visitor-42", mock_response="c")
    await ledger.flush()
    by_user = {r["end_user"]: r["user_profile_id"] for r in rows(db)}
    assert by_user == {"sess-9": "google_9", "someone": "google_9", "visitor-42": None}
    profile = db.fetch_one(
        "select email, full_name, provider, request_count from user_profiles where user_id = 'google_9'"
    )
    assert profile == {"email": "nine@example.com", "full_name": "Nine", "provider": "google", "request_count": 2}
    assert_counters_match_ledger(db)


@pytest.mark.sql
async def test_a_user_with_no_profile_yet_loses_nothing(ledger: Ledger, db: Database) -> None:
    await litellm.acompletion(
        model="gpt-4o-mini", messages=MESSAGES, mock_response="hi", metadata={"user_profile_id": "gitlab_new"}
    )
    await ledger.flush()
    assert len(rows(db)) == 1
    assert db.fetch_one("select request_count from user_profiles where user_id='gitlab_new'") == {"request_count": 1}


@pytest.mark.sql
async def test_replayed_event_changes_nothing(ledger: Ledger, db: Database) -> None:
    event = UsageEvent(
        litellm_call_id="replay-1",
        model="gpt-4o-mini",
        provider="openai",
        status="success",
        user_profile_id="google_1",
        prompt_tokens=100,
        completion_tokens=50,
        reported_cost=0.00005,
    )
    ledger.record(event)
    await ledger.flush()
    before = db.fetch_one("select * from user_profiles where user_id='google_1'")
    ledger.record(event)
    ledger.record(event)
    await ledger.flush()
    assert len(rows(db)) == 1
    assert db.fetch_one("select * from user_profiles where user_id='google_1'") == before
    assert ledger.stats.duplicates == 2
    assert_counters_match_ledger(db)


@pytest.mark.sql
async def test_unpriced_model_has_null_cost_never_zero(ledger: Ledger, db: Database) -> None:
    await litellm.acompletion(
        model="openai/acme-private", messages=MESSAGES, mock_response="x", metadata={"user_profile_id": "google_1"}
    )
    await ledger.flush()
    [row] = rows(db)
    assert (row["model"], row["total_cost"], row["cost_status"]) == ("acme-private", None, "unpriced")
    profile = db.fetch_one("select total_cost, unpriced_count, tokens_used from user_profiles where user_id='google_1'")
    assert profile == {"total_cost": 0, "unpriced_count": 1, "tokens_used": 30}


@pytest.mark.sql
async def test_zero_reported_cost_for_a_priced_model_is_recomputed(ledger: Ledger, db: Database) -> None:
    ledger.record(
        UsageEvent(
            litellm_call_id="zero-1",
            model="gpt-4o-mini",
            provider="openai",
            status="success",
            prompt_tokens=1000,
            completion_tokens=500,
            reported_cost=0.0,
            stream=True,
        )
    )
    await ledger.flush()
    [row] = rows(db)
    assert row["cost_status"] == "recomputed"
    assert row["total_cost"] == 1000 * GPT_IN + 500 * GPT_OUT


@pytest.mark.sql
async def test_custom_price_wins_and_reprice_fixes_stored_rows(ledger: Ledger, db: Database) -> None:
    await litellm.acompletion(
        model="openai/acme-private", messages=MESSAGES, mock_response="x", metadata={"user_profile_id": "google_1"}
    )
    await ledger.flush()
    set_price(db, "openai/acme-private", input_per_million=Decimal(2), output_per_million=Decimal(8))
    await litellm.acompletion(
        model="openai/acme-private", messages=MESSAGES, mock_response="y", metadata={"user_profile_id": "google_1"}
    )
    await ledger.flush()
    old, new = rows(db)
    expected = 10 * Decimal("0.000002") + 20 * Decimal("0.000008")
    assert (new["cost_status"], new["total_cost"]) == ("custom", expected)
    assert old["cost_status"] == "unpriced"
    assert reprice(db) == 1
    old, new = rows(db)
    assert (old["cost_status"], old["total_cost"]) == ("custom", expected)
    assert db.fetch_one("select total_cost, unpriced_count from user_profiles where user_id='google_1'") == {
        "total_cost": 2 * expected,
        "unpriced_count": 0,
    }
    assert reprice(db) == 0
    assert_counters_match_ledger(db)


async def test_in_process_provider_with_registered_price(ledger: Ledger, db: Database) -> None:
    class HouseModel(litellm.CustomLLM):
        async def acompletion(self, model, messages, *args, **kwargs):  # type: ignore[no-untyped-def]
            return litellm.ModelResponse(
                model=model,
                choices=[{"index": 0, "message": {"role": "assistant", "content": "house"}, "finish_reason": "stop"}],
                usage=litellm.Usage(prompt_tokens=111, completion_tokens=222, total_tokens=333),
            )

    litellm.custom_provider_map = [{"provider": "house", "custom_handler": HouseModel()}]
    litellm.register_model(
        {
            "house/m1": {
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "litellm_provider": "house",
                "mode": "chat",
            }
        }
    )
    try:
        await litellm.acompletion(model="house/m1", messages=MESSAGES, metadata={"user_profile_id": "google_1"})
        await ledger.flush()
    finally:
        litellm.custom_provider_map = []
    [row] = rows(db)
    assert (row["model"], row["provider"], row["tokens_used"]) == ("m1", "house", 333)
    assert row["total_cost"] == Decimal("0.000555") and row["cost_status"] == "priced"


async def test_writer_retries_until_the_database_accepts(ledger: Ledger, db: Database, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("alter table request_logs rename to request_logs_away")
        ledger.record(
            UsageEvent(
                litellm_call_id="retry-1",
                model="gpt-4o-mini",
                provider="openai",
                status="success",
                prompt_tokens=5,
                completion_tokens=5,
            )
        )
        assert not await ledger.flush(timeout=0.5)
        assert ledger.stats.failed_attempts >= 1 and "request_logs" in (ledger.stats.last_error or "")
        admin.execute("alter table request_logs_away rename to request_logs")
    assert await ledger.flush(timeout=15)
    assert [r["litellm_call_id"] for r in rows(db)] == ["retry-1"]


@pytest.mark.sql
async def test_events_keep_their_call_time(ledger: Ledger, db: Database) -> None:
    at = dt.datetime(2026, 3, 31, 23, 59, 59, tzinfo=dt.UTC)
    ledger.record(
        UsageEvent(
            litellm_call_id="t-1",
            model="gpt-4o-mini",
            provider="openai",
            status="success",
            user_profile_id="google_1",
            prompt_tokens=1,
            completion_tokens=1,
            created_at=at,
        )
    )
    await ledger.flush()
    assert rows(db)[0]["created_at"] == at
    assert db.fetch_one("select day from usage_daily")["day"] == dt.date(2026, 3, 31)


async def test_content_none_stores_usage_without_messages(db_url: str, db: Database) -> None:
    async with Ledger(db_url, settings=Settings(flush_interval_ms=20, content="none")) as ledger:
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            mock_response="secret answer",
            metadata={"user_profile_id": "google_1"},
        )
        await ledger.flush()
    [row] = rows(db)
    assert (row["messages"], row["response"]) == (None, None)
    assert (row["tokens_used"], row["cost_status"]) == (30, "priced")


async def test_close_records_calls_that_were_not_flushed(db_url: str, db: Database) -> None:
    ledger = await Ledger(db_url).start()
    await litellm.acompletion(model="gpt-4o-mini", messages=MESSAGES, mock_response="a", litellm_call_id="async-1")
    litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="b", litellm_call_id="sync-1")
    assert await ledger.close()
    assert sorted(r["litellm_call_id"] for r in rows(db)) == ["async-1", "sync-1"]


def test_sync_application_flushes_without_sleeping(db_url: str, db: Database) -> None:
    with Ledger(db_url) as ledger:
        for i in range(5):
            litellm.completion(model="gpt-4o-mini", messages=MESSAGES, mock_response="s", litellm_call_id=f"s-{i}")
        assert ledger.flush_sync()
        assert len(rows(db)) == 5


async def test_cancelled_call_with_a_provider_prefix_joins_litellms_rows(ledger: Ledger, db: Database) -> None:
    ledger.record_cancelled(model="anthropic/claude-haiku-4-5", partial_response="Hel", user_profile_id="google_1")
    await ledger.flush()
    [row] = rows(db)
    assert (row["model"], row["provider"], row["cost_status"]) == ("claude-haiku-4-5", "anthropic", "recomputed")
