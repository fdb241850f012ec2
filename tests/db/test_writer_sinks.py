"""The writer knows its sink only through the BatchSink protocol: a sink of a third kind works as it is.

The two sinks of the package (PostgreSQL, Supabase's API) are tested through the ledger elsewhere
(test_ledger.py, test_durability.py, test_supabase_api.py). Here: sinks defined in this file, one
that collects its batches in memory and one that records them in a real database by its own route,
and the error the PostgreSQL sink raises for data it refuses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from llmtally.db import Database
from llmtally.domain.events import UsageEvent
from llmtally.errors import DatabaseError, DataRefused
from llmtally.ledger.postgres_sink import PostgresSink, write_events
from llmtally.ledger.spool import Spool, decode
from llmtally.ledger.writer import BatchSink, LedgerWriter
from tests.support.invariants import assert_counters_match_ledger


class CollectingSink:
    """Keeps every batch in memory; refuses, as bad data, any event of the model ``refused``.

    With ``takes_lines`` it takes the spool records as they are, like the PostgreSQL sink does.
    """

    where = "a list in this test"

    def __init__(self, *, takes_lines: bool = False) -> None:
        self.takes_lines = takes_lines
        self.batches: list[list[UsageEvent]] = []
        self.line_batches: list[list[bytes]] = []
        self.quarantined: list[tuple[str | None, str, str]] = []
        self.seen: set[str] = set()

    def write(self, events: Sequence[UsageEvent]) -> int:
        if any(e.model == "refused" for e in events):
            raise DataRefused("the model 'refused' is refused", sqlstate="23514")
        self.batches.append(list(events))
        new = {e.litellm_call_id for e in events} - self.seen
        self.seen |= new
        return len(new)

    def write_lines(self, lines: Sequence[bytes]) -> int | None:
        if not self.takes_lines:
            return None
        self.line_batches.append(list(lines))
        return len(lines)

    def quarantine(self, rows: Sequence[tuple[str | None, str, str]]) -> int:
        self.quarantined.extend(rows)
        return len(rows)


def _run(sink: BatchSink, spool_dir: Path, events: list[UsageEvent]) -> LedgerWriter:
    writer = LedgerWriter(sink, spool=Spool(spool_dir), flush_interval_ms=10)
    writer.start()
    try:
        for event in events:
            writer.submit(event)
        assert writer.flush(timeout=30)
    finally:
        assert writer.close()
    return writer


def _event(call_id: str, model: str = "gpt-4o-mini", **fields: object) -> UsageEvent:
    return UsageEvent(call_id, model, "success", provider="openai", user_profile_id="github_7", **fields)  # type: ignore[arg-type]


def test_a_sink_that_takes_events_gets_every_event_decoded_in_order(tmp_path: Path) -> None:
    sink = CollectingSink()
    events = [_event(f"c{i}", prompt_tokens=i, messages=[{"role": "user", "content": f"q{i}"}]) for i in range(25)]
    writer = _run(sink, tmp_path / "spool", events)
    got = [e for batch in sink.batches for e in batch]
    assert [(e.litellm_call_id, e.prompt_tokens, e.messages) for e in got] == [
        (e.litellm_call_id, e.prompt_tokens, e.messages) for e in events
    ]
    assert sink.line_batches == [] and sink.quarantined == []
    assert (writer.stats.written, writer.stats.duplicates, writer.stats.quarantined) == (25, 0, 0)


def test_a_sink_that_takes_spool_records_gets_them_as_they_are(tmp_path: Path) -> None:
    sink = CollectingSink(takes_lines=True)
    writer = _run(sink, tmp_path / "spool", [_event(f"l{i}", prompt_tokens=i) for i in range(10)])
    lines = [line for batch in sink.line_batches for line in batch]
    assert [decode(line).litellm_call_id for line in lines] == [f"l{i}" for i in range(10)]
    assert sink.batches == []  # nothing was decoded for it
    assert writer.stats.written == 10


def test_data_a_sink_refuses_is_isolated_and_quarantined_through_that_sink(tmp_path: Path) -> None:
    sink = CollectingSink()
    events = [_event(f"p{i}") for i in range(6)]
    events.insert(3, _event("bad", model="refused", messages=[{"role": "user", "content": "secret"}]))
    writer = _run(sink, tmp_path / "spool", events)
    written = sorted(e.litellm_call_id for batch in sink.batches for e in batch)
    assert written == [f"p{i}" for i in range(6)]
    [(call_id, reason, raw)] = sink.quarantined
    assert call_id == "bad" and "refused" in reason and json.loads(raw)["id"] == "bad"
    assert (writer.stats.written, writer.stats.quarantined) == (6, 1)


class EventsOnlyDatabaseSink:
    """Records batches in a real database through ``write_events`` only (never the records as they are),
    and counts the batches it wrote."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.batches = 0

    @property
    def where(self) -> str:
        return f"{self.db.where} (events only)"

    def write(self, events: Sequence[UsageEvent]) -> int:
        inserted = write_events(self.db, events)
        self.batches += 1
        return inserted

    def write_lines(self, lines: Sequence[bytes]) -> int | None:
        return None

    def quarantine(self, rows: Sequence[tuple[str | None, str, str]]) -> int:
        return PostgresSink(self.db).quarantine(rows)


def test_a_sink_of_its_own_writes_to_a_real_database_with_the_writer_unchanged(db: Database, tmp_path: Path) -> None:
    sink = EventsOnlyDatabaseSink(db)
    events = [_event(f"d{i}", prompt_tokens=10, completion_tokens=5, total_tokens=15) for i in range(30)]
    events.append(_event("d-poison", prompt_tokens=3_000_000_000))  # out of range for the column
    events.append(events[0])  # the same attempt again: a replay
    writer = _run(sink, tmp_path / "spool", events)
    assert sink.batches >= 1
    assert (writer.stats.written, writer.stats.duplicates, writer.stats.quarantined) == (30, 1, 1)
    ids = [r["litellm_call_id"] for r in db.fetch_all("select litellm_call_id from request_logs order by id")]
    assert sorted(ids) == sorted(f"d{i}" for i in range(30))
    [row] = db.fetch_all("select litellm_call_id, reason from quarantine")
    assert row["litellm_call_id"] == "d-poison" and "out of range" in row["reason"]
    profile = db.fetch_one("select tokens_used from user_profiles where user_id = 'github_7'")
    assert profile is not None and profile["tokens_used"] == 30 * 15
    assert_counters_match_ledger(db)


@pytest.mark.sql
def test_the_postgresql_sink_raises_data_refused_for_a_value_the_database_refuses(db: Database) -> None:
    with pytest.raises(DataRefused, match="out of range") as refused:
        PostgresSink(db).write([_event("too-big", prompt_tokens=3_000_000_000)])
    assert isinstance(refused.value, DatabaseError)
    assert refused.value.sqlstate is not None and refused.value.sqlstate.startswith("22")
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 0  # type: ignore[index]
