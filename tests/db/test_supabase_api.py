"""Writing usage through Supabase's API: the real ``supabase`` client against a PostgREST stand-in.

PostgREST itself was not available to the tests: tests/postgrest_standin.py does what Supabase's
gateway and PostgREST do for an RPC call (verify the key, switch role and claims per transaction,
call the function, answer with PostgREST's statuses and error JSON), on a Supabase-shaped database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import litellm
import pytest
from postgrest.exceptions import APIError
from supabase import ClientOptions, create_client

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database
from llmtally.errors import ConfigurationError, DatabaseAuthFailed, SchemaNotReady
from llmtally.ledger.supabase_api import SupabaseApiSink
from llmtally.prices import set_price
from tests.support.cluster import Cluster
from tests.support.invariants import assert_counters_match_ledger
from tests.support.postgrest_standin import PUBLISHABLE_KEY, SECRET_KEY, PostgrestStandIn, make_jwt

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC)


@pytest.fixture
def standin(supabase_db_url: str) -> Iterator[PostgrestStandIn]:
    server = PostgrestStandIn(supabase_db_url).start()
    yield server
    server.stop()


@pytest.fixture
def api_env(monkeypatch: pytest.MonkeyPatch, standin: PostgrestStandIn) -> PostgrestStandIn:
    """The ledger's settings name only the Supabase URL and the service_role key (no database URL)."""
    monkeypatch.setenv("SUPABASE_URL", standin.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", make_jwt("service_role"))
    return standin


@pytest.fixture
def second_supabase_db(cluster: Cluster, supabase_template: str) -> Iterator[Database]:
    name = cluster.create_database(template=supabase_template)
    with Database(cluster.url(name)) as db:
        yield db
    cluster.drop_database(name)


def sample_events(tag: str) -> list[UsageEvent]:
    """Every kind of event: own user, session-linked (by session id and by raw user), anonymous,
    failed, cancelled with partial text, custom-priced, unpriced, odd content."""
    return [
        UsageEvent(f"{tag}-own", "gpt-4o-mini", "success", provider="openai", user_profile_id="google_1",
                   prompt_tokens=10, completion_tokens=20, reported_cost=0.0000135,
                   messages=[{"role": "user", "content": "héllo\x00 wörld"}], response={"id": "r1", "n": 1.5},
                   latency_ms=120, metadata={"team": "research", "nested": {"a": [1, 2]}}, created_at=NOW),
        UsageEvent(f"{tag}-by-session", "gpt-4o-mini", "success", provider="openai", session_id="chat-9",
                   prompt_tokens=3, completion_tokens=4, reported_cost=0.0000027, created_at=NOW),
        UsageEvent(f"{tag}-by-end-user", "gpt-4o-mini", "success", provider="openai", end_user="chat-9",
                   prompt_tokens=5, completion_tokens=6, created_at=NOW),
        UsageEvent(f"{tag}-anonymous", "gpt-4o-mini", "success", provider="openai", end_user="someone",
                   prompt_tokens=1, completion_tokens=1, created_at=NOW),
        UsageEvent(f"{tag}-failed", "gpt-4o-mini", "failure", provider="openai", user_profile_id="github_2",
                   error="rate limited", error_type="RateLimitError", created_at=NOW),
        UsageEvent(f"{tag}-cancelled", "claude-3-5-haiku-20241022", "cancelled", provider="anthropic",
                   user_profile_id="github_2", prompt_tokens=7, completion_tokens=2, response={"partial": "Hel"},
                   stream=True, created_at=NOW),
        UsageEvent(f"{tag}-custom", "acme-internal-llm", "success", provider="openai", user_profile_id="google_1",
                   prompt_tokens=1000, completion_tokens=500, created_at=NOW),
        UsageEvent(f"{tag}-unpriced", "no-such-model-xyz", "success", provider="custom", user_profile_id="google_1",
                   prompt_tokens=9, completion_tokens=9, created_at=NOW),
    ]  # fmt: skip


def snapshot(db: Database) -> dict[str, list[dict[str, object]]]:
    return {
        "request_logs": db.fetch_all(
            "select user_profile_id, end_user, session_id, litellm_call_id, model, provider, prompt_tokens,"
            " completion_tokens, tokens_used, total_cost, cost_status, messages, response, status, error,"
            " error_type, latency_ms, stream, metadata, created_at from request_logs order by litellm_call_id"
        ),
        "user_profiles": db.fetch_all(
            "select user_id, email, full_name, provider, tokens_used, prompt_tokens, completion_tokens, total_cost,"
            " request_count, success_count, failure_count, cancelled_count, unpriced_count, first_request_at,"
            " last_request_at from user_profiles order by user_id"
        ),
        "usage_daily": db.fetch_all("select * from usage_daily order by user_id nulls first, day, model, provider"),
        "sessions": db.fetch_all("select session_id, user_id from sessions order by session_id"),
    }


async def record_all(ledger: Ledger, events: list[UsageEvent]) -> None:
    await ledger.upsert_user("google_1", email="ada@example.com", full_name="Ada Lovelace", provider="google")
    await ledger.link_session("chat-9", "google_9")
    for event in events:
        ledger.record(event)
    assert await ledger.flush()


async def test_the_api_path_stores_exactly_what_the_direct_path_stores(
    api_env: PostgrestStandIn, supabase_db_url: str, second_supabase_db: Database
) -> None:
    with Database(supabase_db_url) as api_db:
        await check_api_matches_direct(api_env, api_db, second_supabase_db)


async def check_api_matches_direct(api_env: PostgrestStandIn, api_db: Database, second_supabase_db: Database) -> None:
    for db in (api_db, second_supabase_db):
        set_price(db, "acme-internal-llm", input_per_million=Decimal("0.3"), output_per_million=Decimal("1.2"))
    settings = Settings(flush_interval_ms=20)

    async with Ledger(settings=settings) as ledger:
        assert ledger.db is None, "with only a Supabase URL and key, the ledger must not connect to a database"
        await record_all(ledger, sample_events("call"))
        assert ledger.stats.written == 8
    async with Ledger(second_supabase_db.url, settings=settings) as direct:
        await record_all(direct, sample_events("call"))

    through_api, directly = snapshot(api_db), snapshot(second_supabase_db)
    assert through_api == directly
    by_id = {r["litellm_call_id"]: r for r in through_api["request_logs"]}
    assert by_id["call-by-session"]["user_profile_id"] == "google_9"
    assert by_id["call-by-end-user"]["user_profile_id"] == "google_9"
    assert by_id["call-anonymous"]["user_profile_id"] is None
    assert by_id["call-custom"]["cost_status"] == "custom"
    assert by_id["call-custom"]["total_cost"] == Decimal("0.0009")
    assert by_id["call-unpriced"]["cost_status"] == "unpriced" and by_id["call-unpriced"]["total_cost"] is None
    assert by_id["call-own"]["messages"] == [{"role": "user", "content": "héllo\ufffd wörld"}]
    assert by_id["call-own"]["created_at"] == NOW
    assert through_api["user_profiles"][1]["email"] == "ada@example.com"
    functions = {function for function, _, _ in api_env.requests}
    assert functions == {"llmtally_ingest", "llmtally_upsert_user", "llmtally_link_session"}
    assert {(role, status) for _, role, status in api_env.requests} <= {("service_role", 200), ("service_role", 204)}
    assert_counters_match_ledger(api_db)


async def test_a_litellm_call_is_recorded_through_the_api(api_env: PostgrestStandIn, supabase_db_url: str) -> None:
    litellm.suppress_debug_info = True
    async with Ledger(settings=Settings(flush_interval_ms=20)) as ledger:
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response="hello",
            metadata={"user_profile_id": "google_7"},
        )
        assert await ledger.flush()
    with Database(supabase_db_url) as db:
        [row] = db.fetch_all("select user_profile_id, status, tokens_used, cost_status from request_logs")
        assert row == {"user_profile_id": "google_7", "status": "success", "tokens_used": 30, "cost_status": "priced"}
        assert_counters_match_ledger(db)


@pytest.mark.parametrize("key", ["jwt", "sb_secret"])
def test_a_replayed_batch_counts_once(standin: PostgrestStandIn, supabase_db_url: str, key: str) -> None:
    sink = SupabaseApiSink(standin.url, make_jwt("service_role") if key == "jwt" else SECRET_KEY).open()
    events = sample_events("replay")
    assert sink.write(events) == len(events)
    with Database(supabase_db_url) as db:
        before = snapshot(db)
        assert sink.write(events) == 0
        assert sink.write(events[:3]) == 0
        assert snapshot(db) == before
        assert_counters_match_ledger(db)
    sink.close()


PUBLIC_KEYS = {
    "anon JWT": (make_jwt("anon"), "anon key"),
    "publishable key": (PUBLISHABLE_KEY, "publishable key"),
    "a user's token": (make_jwt("authenticated", sub="5f2b..."), "user's access token"),
}


@pytest.mark.parametrize("which", list(PUBLIC_KEYS))
async def test_public_keys_are_refused_before_any_request(
    monkeypatch: pytest.MonkeyPatch, standin: PostgrestStandIn, which: str
) -> None:
    key, named = PUBLIC_KEYS[which]
    monkeypatch.setenv("LLMTALLY_SUPABASE_URL", standin.url)
    monkeypatch.setenv("LLMTALLY_SUPABASE_SERVICE_KEY", key)
    with pytest.raises(ConfigurationError) as info:
        await Ledger.from_env().start()
    message = str(info.value)
    assert named in message and "service_role key or a secret key" in message
    assert "\n" not in message and key not in message
    assert standin.requests == []


def test_the_api_itself_refuses_clients(standin: PostgrestStandIn, supabase_db_url: str) -> None:
    """Bypassing llmtally's own check: the database's grants refuse anon (401) and users (403)."""
    events = [{"litellm_call_id": "forged", "model": "gpt-4o", "status": "success", "user_profile_id": "google_1"}]
    calls = {
        "llmtally_ingest": {"events": events},
        "llmtally_upsert_user": {"user_id": "google_1", "email": "forged@example.com"},
        "llmtally_link_session": {"session_id": "forged", "user_id": "google_1"},
    }
    for key, status in [(PUBLISHABLE_KEY, 401), (make_jwt("anon"), 401), (make_jwt("authenticated", sub="u"), 403)]:
        client = create_client(standin.url, key, options=ClientOptions(auto_refresh_token=False, persist_session=False))
        for function, params in calls.items():
            with pytest.raises(APIError) as info:
                client.rpc(function, params).execute()
            assert info.value.code == "42501", info.value
            assert "permission denied for function" in str(info.value.message)
            assert standin.requests[-1][1:] == ("authenticated" if status == 403 else "anon", status)
    with Database(supabase_db_url) as db:
        assert db.fetch_one("select count(*) as n from request_logs")["n"] == 0
        assert db.fetch_one("select count(*) as n from user_profiles")["n"] == 0
        assert db.fetch_one("select count(*) as n from sessions")["n"] == 0


def test_a_key_signed_by_someone_else_is_rejected(standin: PostgrestStandIn) -> None:
    forged = make_jwt("service_role", secret="not-the-project-secret-but-long-enough-for-hs256")
    with pytest.raises(DatabaseAuthFailed, match="rejected the key"):
        SupabaseApiSink(standin.url, forged).open()
    expired = make_jwt("service_role", expires_in=dt.timedelta(seconds=-60))
    with pytest.raises(DatabaseAuthFailed, match="JWT expired"):
        SupabaseApiSink(standin.url, expired).open()


def test_a_project_without_the_migrations_is_one_line(empty_supabase_db_url: str) -> None:
    server = PostgrestStandIn(empty_supabase_db_url).start()
    try:
        with pytest.raises(SchemaNotReady) as info:
            SupabaseApiSink(server.url, SECRET_KEY).open()
        assert "llmtally migrate" in str(info.value) and "supabase db push" in str(info.value)
        assert server.requests == [("llmtally_ingest", "service_role", 404)]
    finally:
        server.stop()


async def test_nothing_is_dropped_while_the_api_is_down(
    api_env: PostgrestStandIn, supabase_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
    async with Ledger(settings=Settings(flush_interval_ms=20, batch_size=7)) as ledger:
        api_env.stop()
        events = [
            UsageEvent(f"down-{i}", "gpt-4o-mini", "success", provider="openai", user_profile_id=f"google_{i % 3}",
                       prompt_tokens=i, completion_tokens=1, created_at=NOW)
            for i in range(40)
        ]  # fmt: skip
        with caplog.at_level(logging.ERROR, logger="llmtally.writer"):
            for event in events:
                ledger.record(event)
            deadline = time.monotonic() + 30
            while ledger.stats.failed_attempts < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert ledger.stats.failed_attempts >= 2 and ledger.stats.written == 0
            api_env.start()  # same port
            assert await ledger.flush(timeout=60)
        assert ledger.stats.written == 40 and ledger.stats.duplicates == 0
    assert any("cannot reach the Supabase API at" in r.getMessage() for r in caplog.records)
    assert all(key not in r.getMessage() for r in caplog.records)
    with Database(supabase_db_url) as db:
        assert db.fetch_one("select count(*) as n from request_logs")["n"] == 40
        assert_counters_match_ledger(db)


@pytest.mark.slow
def test_the_cli_refuses_a_publishable_key_in_one_line(standin: PostgrestStandIn, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "SUPABASE_")) and k != "DATABASE_URL"}
    env |= {"SUPABASE_URL": standin.url, "SUPABASE_SERVICE_ROLE_KEY": PUBLISHABLE_KEY, "LLMTALLY_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "llmtally", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "publishable key" in lines[0], result.stderr
    assert PUBLISHABLE_KEY not in result.stdout + result.stderr
    assert standin.requests == []


def test_a_poisoned_event_is_quarantined_through_the_api(
    standin: PostgrestStandIn, supabase_db_url: str, tmp_path: Path
) -> None:
    from llmtally.ledger.spool import Spool
    from llmtally.ledger.writer import LedgerWriter

    sink = SupabaseApiSink(standin.url, make_jwt("service_role")).open()
    writer = LedgerWriter(sink, spool=Spool(tmp_path / "spool"), flush_interval_ms=20)
    writer.start()
    try:
        writer.submit(UsageEvent("api-good", "gpt-4o-mini", "success", provider="openai", prompt_tokens=2))
        writer.submit(UsageEvent("api-poison", "gpt-4o-mini", "success", prompt_tokens=3_000_000_000))
        assert writer.flush(timeout=30)
    finally:
        writer.close()
        sink.close()
    assert writer.stats.quarantined == 1
    with Database(supabase_db_url) as db:
        assert [r["litellm_call_id"] for r in db.fetch_all("select litellm_call_id from request_logs")] == ["api-good"]
        [row] = db.fetch_all("select litellm_call_id, reason from quarantine")
        assert row["litellm_call_id"] == "api-poison" and "out of range" in row["reason"]
