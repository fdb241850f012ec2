"""Deleting a user's personal data (and, re-exported from the write path, retention).

Deleting works in bounded batches of short transactions, so the ledger keeps writing meanwhile.
The user's calls stay in request_logs as anonymous usage (no user, no end user, no session, no
content, no metadata, no error text), so organisation-wide totals stay true; the statement-level
trigger moves their usage from their counters and rollup rows to the anonymous rollup rows in the
same statement. Then their remaining rollup rows (from calls already removed by retention) are
merged into the anonymous ones, and their profile, sessions, chat threads (schema ``chat``) and
quarantined events are deleted. Nothing that names or describes the person remains.

Retention (``apply_retention``) lives in ``llmtally.ledger.retention``: the ledger applies it on a
schedule, and the write path imports no administration feature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import UnknownUser, UserInputError
from llmtally.ledger.retention import BATCH, BUDGET_PERIOD_DAYS, RetentionReport, apply_retention

__all__ = [
    "BATCH",
    "BUDGET_PERIOD_DAYS",
    "DeletionReport",
    "RetentionReport",
    "apply_retention",
    "check_deletable",
    "delete_user",
]


@dataclass
class DeletionReport:
    user_id: str
    calls_anonymised: int = 0
    sessions_deleted: int = 0
    threads_deleted: int = 0
    quarantined_deleted: int = 0


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def check_deletable(db: Database, user_id: str) -> None:
    """Raise UnknownUser unless there is something of USER_ID to delete (a profile, a chat login or thread)."""
    if not user_id:
        raise UserInputError("the user id must not be empty")
    known = db.fetch_one(query("privacy_known_user"), {"u": user_id})
    if not known or not known["n"]:
        raise UnknownUser(user_id)


def delete_user(db: Database, user_id: str, *, batch: int = BATCH) -> DeletionReport:
    """Remove a user's profile, content and personal data; keep their usage as anonymous totals."""
    check_deletable(db, user_id)
    report = DeletionReport(user_id)
    while True:  # one short transaction per batch; the trigger moves the usage to anonymous
        n = db.execute(query("anonymise_user_calls"), {"u": user_id, "batch": batch})
        report.calls_anonymised += n
        n += db.execute(query("anonymise_user_attempts"), {"u": user_id, "batch": batch})
        if n == 0:
            break
    with db.transaction() as conn:
        # Rollup rows left from calls that retention already removed: merged into the anonymous rows
        # (usage_daily_totals has no user and is unchanged).
        conn.execute(query("merge_into_anonymous"), {"u": user_id})
        # Budgets, limits and alerts go with the profile (cascade); calls in flight, the rate window and
        # the refusal counts name the user without a foreign key.
        conn.execute(query("delete_user_reservations"), (user_id,))
        conn.execute(query("delete_user_rate_log"), (user_id,))
        conn.execute(query("delete_user_refusals"), (user_id,))
        report.sessions_deleted = conn.execute(query("delete_user_sessions"), (user_id,)).rowcount
        conn.execute(query("delete_user_web_sessions"), (user_id,))  # logged out at once
        report.threads_deleted = conn.execute(query("delete_user_threads"), {"u": user_id}).rowcount
        conn.execute(query("delete_chat_user"), (user_id,))
        pattern = f"%{_like_escape(json.dumps(user_id))}%"
        report.quarantined_deleted = conn.execute(query("delete_user_quarantine"), (pattern,)).rowcount
        conn.execute(query("delete_user_profile"), (user_id,))
    return report
