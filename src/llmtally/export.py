"""Export request_logs as CSV or JSON Lines, streamed: a server-side cursor, bounded memory.

The same generator serves ``llmtally export`` and the dashboard's download. Dates are UTC days:
``since`` inclusive, ``until`` exclusive. JSON columns (metadata, messages, response) are written as
JSON text in CSV and as JSON values in JSON Lines; costs keep every digit (numeric, never float):
in JSON Lines ``total_cost`` is a JSON number with the database's exact digits.

CSV is opened in spreadsheets, and a chat user chooses some of the text that lands in it (the session
id, the messages): a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is written with a leading single quote (OWASP's advice against formula injection), so a spreadsheet
shows it as text instead of running it. Numbers, dates and JSON columns are never changed, nor is
anything in JSON Lines.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import UnknownUser, UserInputError

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
COLUMNS = (
    "id",
    "created_at",
    "user_profile_id",
    "end_user",
    "session_id",
    "litellm_call_id",
    "model",
    "provider",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "tokens_used",
    "total_cost",
    "cost_status",
    "latency_ms",
    "first_token_ms",
    "stream",
    "error_type",
    "error",
    "metadata",
    "messages",
    "response",
)
JSON_COLUMNS = frozenset({"metadata", "messages", "response"})
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
_FLUSH_BYTES = 64 * 1024
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ExportFilter:
    since: dt.date | None = None
    until: dt.date | None = None
    user_id: str | None = None
    end_user: str | None = None  # the call's end_user, exactly

    def __post_init__(self) -> None:
        if self.since and self.until and self.until <= self.since:
            raise UserInputError(f"until ({self.until}) must be after since ({self.since})")

    @property
    def params(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "user_id": self.user_id, "end_user": self.end_user}


def neutralise(text: str) -> str:
    """A text cell a spreadsheet will not read as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cell(column: str, value: Any) -> str:
    if isinstance(value, str) and column not in JSON_COLUMNS:
        return neutralise(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def _json_fragment(column: str, value: Any) -> str:
    """One value as JSON text. JSON columns arrive as the database's own JSON text, and costs are
    written as numbers with every digit, so nothing passes through a float."""
    if value is None:
        return "null"
    if column in JSON_COLUMNS:
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return json.dumps(value.astimezone(dt.UTC).isoformat())
    return json.dumps(value, ensure_ascii=False)


def _jsonl_line(row: dict[str, Any]) -> str:
    return "{" + ",".join(f'"{c}":{_json_fragment(c, row[c])}' for c in COLUMNS) + "}\n"


def check_filter(db: Database, where: ExportFilter) -> None:
    """Raise UnknownUser if the filter names a user who has no profile (an export of nobody is a typo)."""
    if where.user_id is not None and not db.fetch_all(query("user_exists"), {"user_id": where.user_id}):
        raise UnknownUser(where.user_id)


def count_rows(db: Database, where: ExportFilter) -> int:
    row = db.fetch_one(query("count_export"), where.params)
    return int(row["n"]) if row else 0


def export_chunks(db: Database, fmt: str, where: ExportFilter, *, on_rows: Any = None) -> Iterator[str]:
    """The export as text chunks of about 64 KB; ``on_rows(n)`` is called as rows are written."""
    if fmt not in FORMATS:
        raise UserInputError(f"format must be csv or jsonl (got {fmt!r})")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(COLUMNS)
    pending = 0
    for row in db.stream(query("export_requests"), where.params):
        if writer is not None:
            writer.writerow([_csv_cell(c, row[c]) for c in COLUMNS])
        else:
            buffer.write(_jsonl_line(row))
        pending += 1
        if buffer.tell() >= _FLUSH_BYTES:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if on_rows is not None:
                on_rows(pending)
            pending = 0
    if buffer.tell():
        yield buffer.getvalue()
    if on_rows is not None and pending:
        on_rows(pending)
