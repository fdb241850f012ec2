"""The writer's fast path (PostgreSQL reads the spool records) stores exactly what the Python path stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database
from llmtally.errors import LlmtallyError
from llmtally.ledger.postgres_sink import PostgresSink, postgres_reads_as_is, write_events, write_lines
from llmtally.ledger.spool import FAST_RECORD, decode, encode
from llmtally.ledger.writer import LedgerWriter
from tests.support.fuzz_events import events
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

COLUMNS = (
    "user_profile_id, end_user, session_id, model, provider, prompt_tokens, completion_tokens, tokens_used,"
    " total_cost, cost_status, messages, response, status, error, error_type, latency_ms, stream, metadata,"
    " created_at, content_truncated, content_original_bytes"
)
_n = itertools.count()

TYPICAL = [
    UsageEvent(
        "t",
        "gpt-4o-mini",
        "success",
        provider="openai",
        user_profile_id="github_1",
        session_id="s-1",
        prompt_tokens=12,
        completion_tokens=30,
        total_tokens=42,
        messages=[{"role": "user", "content": 'tab\there, newline\nthere, "quotes", back\\slash, é, 😀'}],
        response={"choices": [{"message": {"content": "C:\\temp\\new"}}]},
        latency_ms=420,
        stream=True,
        metadata={"team": "a", "n": 1.5, "nested": {"x": [1, None]}},
    ),
    UsageEvent("t", "claude-3-5-sonnet-20240620", "failure", provider="anthropic", error="boom", error_type="APIError"),
    UsageEvent("t", "", "cancelled", provider="", user_profile_id="", end_user="", prompt_tokens=-3),
    UsageEvent("t", "my-private-model", "success", prompt_tokens=5, completion_tokens=5, total_tokens=3),
    UsageEvent("t", "gpt-4o", "success", prompt_tokens=10, completion_tokens=2, reported_cost=0.000345),
    UsageEvent("t", "gpt-4o", "success", latency_ms=-7, created_at=dt.datetime(2026, 3, 1, 12, 0)),
    UsageEvent(
        "t", "gpt-4o", "success", created_at=dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    ),
    UsageEvent("t", "gpt-4o", "success", metadata=None),  # type: ignore[arg-type]
    UsageEvent("t", "gpt-4o", "success", metadata=["a", "list"]),  # type: ignore[arg-type]
    UsageEvent("t", "gpt-4o", "success", messages=[{"content": "x" * 5000}]),  # cut by max_content_bytes
]


def _row(db: Database, call_id: str) -> dict[str, Any] | None:
    return db.fetch_one(f"select {COLUMNS} from request_logs where litellm_call_id = %s", (call_id,))


def _both(db: Database, event: UsageEvent, *, content: str = "full", store_content: bool = True) -> tuple[Any, Any]:
    """Write ``event`` through both paths under two ids; the two rows (None where a path refused it)."""
    n = next(_n)
    fast_line = encode(dataclasses.replace(event, litellm_call_id=f"F{n}"), content=content, max_content_bytes=4096)
    slow_line = encode(dataclasses.replace(event, litellm_call_id=f"S{n}"), content=content, max_content_bytes=4096)
    assert fast_line.startswith(FAST_RECORD)
    fast = slow = None
    if postgres_reads_as_is(fast_line):
        try:
            write_lines(db, [fast_line], store_content=store_content)
            fast = _row(db, f"F{n}")
        except (psycopg.Error, LlmtallyError):
            pass  # the writer then takes the Python path for the batch
    try:
        write_events(db, [decode(slow_line)], store_content=store_content)
        slow = _row(db, f"S{n}")
    except (psycopg.Error, LlmtallyError, ValueError, TypeError, OverflowError):
        pass
    return fast, slow


@pytest.mark.parametrize(("content", "store_content"), [("full", True), ("redacted", True), ("none", False)])
def test_typical_records_give_the_same_rows(db: Database, content: str, store_content: bool) -> None:
    for event in TYPICAL:
        fast, slow = _both(db, event, content=content, store_content=store_content)
        assert fast is not None and fast == slow, event
    assert_counters_match_ledger(db)


def test_content_is_dropped_when_the_writer_stores_none(db: Database) -> None:
    fast, slow = _both(db, TYPICAL[0], store_content=False)
    assert fast == slow and fast is not None and fast["messages"] is None and fast["response"] is None


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(event=events())
@pytest.mark.slow
def test_any_record_postgresql_accepts_gives_the_same_row(db: Database, event: UsageEvent) -> None:
    fast, slow = _both(db, event)
    if fast is not None:
        assert fast == slow


def test_a_batch_with_a_record_jsonb_refuses_is_written_by_the_python_path(db_url: str, db: Database) -> None:
    """NaN and lone surrogates are valid in a record but not in jsonb: the batch is decoded instead."""
    with Ledger(db_url, settings=Settings(flush_interval_ms=10, batch_size=50)) as ledger:
        for i in range(20):
            ledger.record(UsageEvent(f"b{i}", "gpt-4o-mini", "success", prompt_tokens=i, messages=[{"i": i}]))
        ledger.record(UsageEvent("b-nan", "gpt-4o-mini", "success", messages=[{"score": float("nan")}]))
        ledger.record(UsageEvent("b-sur", "gpt-4o-mini", "success", messages=[{"content": "lone \udc80"}]))
        assert ledger.flush_sync()
    rows = {r["litellm_call_id"]: r for r in db.fetch_all("select litellm_call_id, messages from request_logs")}
    assert len(rows) == 22
    assert rows["b-nan"]["messages"] == [{"score": None}]
    assert rows["b-sur"]["messages"] == [{"content": "lone ?"}]  # as clean_text replaces it
    assert db.fetch_one("select count(*) as n from quarantine")["n"] == 0
    assert_counters_match_ledger(db)


def test_records_of_the_previous_format_are_still_written(db_url: str, db: Database) -> None:
    """A spool left by an older version (records without the resolved cost) is decoded and written."""
    line = encode(UsageEvent("old-1", "gpt-4o-mini", "success", prompt_tokens=1000, completion_tokens=10))
    record = json.loads(line)
    for key in ("v", "c", "cs"):
        record.pop(key)
    old = json.dumps(record).encode() + b"\n"
    assert not postgres_reads_as_is(old)
    writer = LedgerWriter(PostgresSink(db), spool=None)  # type: ignore[arg-type]  # only the storing half is needed
    assert writer._store_lines([old, line.replace(b"old-1", b"new-1")]) == (2, 0, 0)
    costs = {
        r["litellm_call_id"]: r
        for r in db.fetch_all("select litellm_call_id, total_cost, cost_status from request_logs")
    }
    assert costs["old-1"]["total_cost"] == costs["new-1"]["total_cost"] > 0
    assert costs["old-1"]["cost_status"] == costs["new-1"]["cost_status"] == "recomputed"


def _stage_of(conn: psycopg.Connection) -> int | None:
    """Rows in this connection's line stage, None when it has none."""
    if conn.execute("select to_regclass('pg_temp.llmtally_line_stage')").fetchone() == (None,):
        return None
    return int(conn.execute("select count(*) from pg_temp.llmtally_line_stage").fetchone()[0])  # type: ignore[index]


def test_the_stage_lasts_the_connection_holds_only_its_batch_and_survives_a_refused_batch(db_url: str) -> None:
    """The stage is made once per connection and is empty after every batch; a batch the database
    refuses takes a stage it made with it, and the next batch makes it again."""

    def line(call_id: str, **fields: Any) -> bytes:
        return encode(UsageEvent(call_id, "gpt-4o-mini", "success", user_profile_id="github_1", **fields))

    with Database(db_url, max_size=1) as one:
        with one.connection() as conn:
            assert _stage_of(conn) is None
        with pytest.raises(LlmtallyError, match="out of range"):
            write_lines(one, [line("refused", prompt_tokens=3_000_000_000)])
        with one.connection() as conn:
            assert _stage_of(conn) is None  # made in the refused batch's transaction, and gone with it
        assert write_lines(one, [line("a1", prompt_tokens=1), line("a2", prompt_tokens=2)]) == 2
        with one.connection() as conn:
            assert _stage_of(conn) == 0
            backend = conn.info.backend_pid
        # a few events (a generic plan), then many (the server's choice), then a refused one
        assert write_lines(one, [line("b1", prompt_tokens=3)]) == 1
        assert write_lines(one, [line(f"c{i}", prompt_tokens=4) for i in range(30)]) == 30
        with pytest.raises(LlmtallyError, match="out of range"):
            write_lines(one, [line("d1"), line("refused", prompt_tokens=3_000_000_000)])
        assert write_lines(one, [line("d1", prompt_tokens=5)]) == 1
        with one.connection() as conn:
            assert conn.info.backend_pid == backend and _stage_of(conn) == 0
            # the plan setting was the batch's own
            assert conn.execute("show plan_cache_mode").fetchone() == ("auto",)
        rows = one.fetch_all("select litellm_call_id, prompt_tokens from request_logs order by litellm_call_id")
    expected = {"a1": 1, "a2": 2, "b1": 3, "d1": 5} | {f"c{i}": 4 for i in range(30)}
    assert {r["litellm_call_id"]: r["prompt_tokens"] for r in rows} == expected
    with Database(db_url) as db:
        assert_counters_match_ledger(db)
