"""Retention of old content and rows, which the ledger applies on a schedule (LLMTALLY_RETENTION_*).

It works in bounded batches of short transactions, so the ledger keeps writing meanwhile. Content
(messages, response) of calls older than ``content_days`` is cleared; calls older than ``rows_days``
are deleted. Deleting rows changes no counter (the usage triggers fire on INSERT and UPDATE only):
user_profiles and usage_daily keep the lifetime totals, and the invariant becomes counters = rollup
sums (request_logs then holds only the recent part).

It lives in the write path, not beside the deletion of a user (``llmtally.privacy``), so that the
ledger does not import an administration feature.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import UserInputError

BATCH = 5000
BUDGET_PERIOD_DAYS = 32  # longer than the longest calendar period a budget can have (a month)


@dataclass
class RetentionReport:
    content_cleared: int = 0
    rows_deleted: int = 0
    quarantine_deleted: int = 0


def apply_retention(
    db: Database, *, content_days: int | None = None, rows_days: int | None = None, batch: int = BATCH
) -> RetentionReport:
    """Clear old content and delete old calls, in batches; lifetime counters and the rollup stay."""
    for name, days in (("--content-days", content_days), ("--rows-days", rows_days)):
        if days is not None and days < 1:
            raise UserInputError(f"{name} must be at least 1 (got {days})")
    if content_days is None and rows_days is None:
        raise UserInputError("give --content-days, --rows-days or both")
    if rows_days is not None and rows_days < BUDGET_PERIOD_DAYS:
        # Budgets sum a period's spend from request_logs: deleting calls of a period in force would
        # give that spend back.
        row = db.fetch_one(query("period_budgets_count"))
        if row and row["n"]:
            raise UserInputError(
                f"--rows-days must be at least {BUDGET_PERIOD_DAYS} while daily, weekly or monthly budgets exist"
                f" (got {rows_days}): their spend is read from the calls of the current period"
            )
    report = RetentionReport()
    if rows_days is not None:
        while True:
            n = db.execute(query("retention_delete_calls"), {"d": rows_days, "batch": batch})
            report.rows_deleted += n
            if n == 0:
                break
        report.quarantine_deleted = db.execute(query("retention_delete_quarantine"), (rows_days,))
    if content_days is not None:
        while True:
            n = db.execute(query("retention_clear_content"), {"d": content_days, "batch": batch})
            report.content_cleared += n
            if n == 0:
                break
    return report
