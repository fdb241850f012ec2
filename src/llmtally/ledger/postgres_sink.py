"""The PostgreSQL sink: the writer's batches COPYed into a stage and recorded by llmtally_insert_events.

Two ways in, with the same rows as the result (tests/db/test_fast_path.py):

- ``write_lines``: spool records as they are. PostgreSQL reads their JSON fields itself
  (``insert_from_line_stage``), so this process neither decodes nor re-encodes them. Only records of
  this version's format, without the NUL escape jsonb refuses, go this way.
- ``write_events``: decoded events, COPYed as typed rows (``insert_from_stage``).

Either is one transaction, idempotent on the attempt's key (a replayed attempt counts 0). Errors
leave as llmtally errors, translated by ``llmtally.db``: a batch refused for its data raises
``DataRefused``, which the writer isolates; anything else it retries.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.domain.events import UsageEvent
from llmtally.ledger.rows import event_row
from llmtally.ledger.spool import FAST_RECORD


def write_events(db: Database, events: Sequence[UsageEvent], *, store_content: bool = True) -> int:
    """Write a batch in one transaction; return how many rows were new (replays count 0)."""
    rows = [event_row(i, e, store_content=store_content) for i, e in enumerate(events)]
    with db.transaction() as conn:
        conn.execute(query("create_stage"))
        with conn.cursor().copy(query("copy_stage")) as copy:
            for row in rows:
                copy.write_row(row)
        # llmtally_insert_events (migration 0002) returns how many rows were new.
        inserted = conn.execute(query("insert_from_stage")).fetchone()
        return int(inserted[0]) if inserted else 0


# A batch of at most this many events is planned once per connection (line_stage_ready in ledger.sql).
FEW_EVENTS = 4


def write_lines(db: Database, lines: Sequence[bytes], *, store_content: bool = True) -> int:
    """Write spool records as they are (each starts with FAST_RECORD): PostgreSQL reads their fields.

    The same rows as ``write_events`` over the decoded records, without decoding and re-encoding
    them in this process. Raises what the database raises; the writer falls back to write_events.
    """
    # COPY's text format: each record's place in the batch, a tab, and the record, one line of ASCII
    # JSON (no tab, no newline) in which only backslashes need doubling.
    data = b"".join(b"%d\t%s" % (seq, line.replace(b"\\", b"\\\\")) for seq, line in enumerate(lines))
    with db.transaction() as conn:
        stage = conn.execute(query("line_stage_ready"), {"few": len(lines) <= FEW_EVENTS}).fetchone()
        if not (stage and stage[0]):
            conn.execute(query("create_line_stage"))
            conn.execute(query("line_stage_storage"))
        with conn.cursor().copy(query("copy_line_stage")) as copy:
            copy.write(data)
        inserted = conn.execute(query("insert_from_line_stage"), {"store_content": store_content}).fetchone()
        return int(inserted[0]) if inserted else 0


def quarantine_rows(db: Database, rows: Sequence[tuple[str | None, str, str]]) -> int:
    """Keep events the database refused: (litellm_call_id, reason, raw record)."""
    with db.transaction() as conn, conn.cursor() as cur:
        cur.executemany(query("quarantine_insert"), [(c, r, raw, len(raw.encode())) for c, r, raw in rows])
    return len(rows)


def postgres_reads_as_is(line: bytes) -> bool:
    """A record PostgreSQL can read as it is: written by this version, and without the NUL escape
    that jsonb refuses (decoding replaces it)."""
    return line.startswith(FAST_RECORD) and b"\\u0000" not in line


class PostgresSink:
    """The writer's sink for a PostgreSQL database reached directly (a ``Database``'s pool)."""

    def __init__(self, db: Database, *, store_content: bool = True) -> None:
        self.db = db
        self.store_content = store_content

    @property
    def where(self) -> str:
        return self.db.where

    def write(self, events: Sequence[UsageEvent]) -> int:
        return write_events(self.db, events, store_content=self.store_content)

    def write_lines(self, lines: Sequence[bytes]) -> int | None:
        """The records as they are, when PostgreSQL can read every one of them; else None."""
        if not all(postgres_reads_as_is(line) for line in lines):
            return None
        return write_lines(self.db, lines, store_content=self.store_content)

    def quarantine(self, rows: Sequence[tuple[str | None, str, str]]) -> int:
        return quarantine_rows(self.db, rows)
