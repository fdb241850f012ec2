"""Property: whatever events arrive, the writer keeps going and every one lands in request_logs or quarantine."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database
from llmtally.ledger.postgres_sink import write_events
from llmtally.ledger.sanitize import clean_text
from tests.support.fuzz_events import RANK, attempt_calls, events
from tests.support.invariants import assert_counters_match_ledger
from tests.support.reset import reset_ledger

pytestmark = pytest.mark.slow


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    with Ledger(db_url, settings=Settings(flush_interval_ms=10, batch_size=200, max_content_bytes=1 << 20)) as started:
        yield started


@settings(
    max_examples=35,  # 20-100 events each: about 2,000 events
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(batch=st.lists(events(), min_size=20, max_size=100))
def test_every_event_is_recorded_or_quarantined(ledger: Ledger, db: Database, batch: list[UsageEvent]) -> None:
    for event in batch:
        ledger.record(event)
    assert ledger.flush_sync(timeout=120)
    assert ledger._require_writer()._thread is not None and ledger._require_writer()._thread.is_alive()
    expected = {clean_text(e.litellm_call_id) for e in batch}
    found = db.fetch_all(
        "select litellm_call_id from request_logs where litellm_call_id = any(%(ids)s)"
        " union select litellm_call_id from quarantine where litellm_call_id = any(%(ids)s)",
        {"ids": list(expected)},
    )
    assert {r["litellm_call_id"] for r in found} == expected
    # Usage is never dropped with content: a row refused only for its content is written without it.
    for e in batch:
        poisoned = e.tokens_used >= 2**31 or e.status == "bogus" or (e.latency_ms or 0) >= 2**31
        if not poisoned:
            call_id = clean_text(e.litellm_call_id)
            row = db.fetch_one("select prompt_tokens from request_logs where litellm_call_id = %s", (call_id,))
            assert row is not None and row["prompt_tokens"] == max(0, e.prompt_tokens)
    assert_counters_match_ledger(db)


def test_a_refused_call_with_a_hostile_id_is_logged_in_text_any_log_file_can_hold(
    ledger: Ledger, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ledger.record(UsageEvent("hostile-\udb6a", "gpt-4o-mini", "success", prompt_tokens=3_000_000_000))
    assert ledger.flush_sync()
    stored = clean_text("hostile-\udb6a")  # as the database keeps the id
    refused = [r.getMessage() for r in caplog.records if "refused call" in r.getMessage()]
    assert refused and all(f"refused call {stored}:" in m for m in refused)
    for message in refused:
        message.encode("utf-8")  # a lone surrogate would make a UTF-8 log handler drop the line
    assert db.fetch_one("select count(*) as n from quarantine where litellm_call_id = %s", (stored,)) == {"n": 1}


def test_decimal_and_datetime_content_round_trip(ledger: Ledger, db: Database) -> None:
    ledger.record(
        UsageEvent(
            "typed-1",
            "gpt-4o-mini",
            "success",
            messages=[{"at": dt.datetime(2026, 1, 2, 3, 4, 5), "amount": decimal.Decimal("1.10")}],
        )
    )
    assert ledger.flush_sync()
    row = db.fetch_one("select messages from request_logs where litellm_call_id = 'typed-1'")
    assert row is not None and row["messages"] == [{"at": "2026-01-02T03:04:05", "amount": "1.10"}]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(calls=attempt_calls(), data=st.data())
def test_attempts_in_any_order_and_batches_give_each_call_its_best_outcome(
    db: Database, db_url: str, calls: list[list[UsageEvent]], data: st.DataObject
) -> None:
    reset_ledger(db_url)  # one database for every example
    db.execute("insert into user_profiles (user_id) values ('google_1'), ('github_2')")
    attempts = [a for call in calls for a in call]
    replayed = data.draw(st.lists(st.sampled_from(attempts), max_size=4))  # at-least-once delivery
    order = data.draw(st.permutations(attempts + replayed))
    cut = data.draw(st.integers(0, len(order)))
    write_events(db, order[:cut])  # two writers' batches, in either order
    write_events(db, order[cut:])
    for call in calls:
        row = db.fetch_one(
            "select status, attempt_count, prompt_tokens, cached_tokens, reasoning_tokens, cache_hit"
            " from request_logs where call_key = %s",
            (call[0].litellm_call_id,),
        )
        best = max(RANK[a.status] for a in call)
        winners = [a for a in call if RANK[a.status] == best]
        assert row is not None
        assert RANK[row["status"]] == best and row["attempt_count"] == len(call)
        assert row["prompt_tokens"] == sum(a.prompt_tokens for a in winners)
        assert row["cached_tokens"] == sum(a.cached_tokens for a in winners)
        assert row["reasoning_tokens"] == sum(a.reasoning_tokens for a in winners)
        assert row["cache_hit"] == all(a.cache_hit for a in winners)
    attempts_stored = db.fetch_one("select count(*) as n from request_attempts")
    assert attempts_stored == {"n": len(attempts)}  # each attempt once, replays ignored
    assert_counters_match_ledger(db)
