"""The quarantine: usage events the database refused, listed and retried by the server."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import DatabaseError
from llmtally.ledger.postgres_sink import write_events
from llmtally.ledger.spool import decode


@dataclass(frozen=True)
class QuarantinedEvent:
    id: int
    litellm_call_id: str | None
    reason: str
    raw_bytes: int
    attempts: int
    created_at: dt.datetime


def list_quarantine(db: Database, *, limit: int = 100) -> list[QuarantinedEvent]:
    rows = db.fetch_all(
        query("list_quarantine"),
        (limit,),
    )
    return [QuarantinedEvent(**r) for r in rows]


@dataclass
class RetryResult:
    written: int = 0
    already_recorded: int = 0
    still_refused: int = 0


def retry_quarantine(db: Database, *, ids: list[int] | None = None, store_content: bool = True) -> RetryResult:
    """Write quarantined events again (e.g. after a fix); those the database now accepts leave the quarantine."""
    result = RetryResult()
    rows = db.fetch_all(
        query("quarantined_events"),
        {"ids": ids},
    )
    for row in rows:
        try:
            event = decode(row["raw_event"].encode("utf-8"))
            inserted = write_events(db, [event], store_content=store_content)
        except (DatabaseError, ValueError, TypeError, KeyError) as exc:
            result.still_refused += 1
            db.execute(
                query("quarantine_still_refused"),
                (str(exc).splitlines()[0] if str(exc) else type(exc).__name__, row["id"]),
            )
            continue
        if inserted:
            result.written += 1
        else:
            result.already_recorded += 1
        db.execute(query("quarantine_release"), (row["id"],))
    return result
