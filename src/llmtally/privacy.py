"""Deleting a user's personal data, and retention of old content and rows.

Both work in bounded batches of short transactions, so the ledger keeps writing meanwhile.

Deleting a user: their calls stay in request_logs as anonymous usage (no user, no end user, no
session, no content, no metadata, no error text), so organisation-wide totals stay true; the
statement-level trigger moves their usage from their counters and rollup rows to the anonymous
rollup rows in the same statement. Then their remaining rollup rows (from calls already removed by
retention) are merged into the anonymous ones, and their profile, sessions, chat threads (schema
``chat``) and quarantined events are deleted. Nothing that names or describes the person remains.

Retention: content (messages, response) of calls older than ``content_days`` is cleared; calls
older than ``rows_days`` are deleted. Deleting rows changes no counter (the usage triggers fire on
INSERT and UPDATE only): user_profiles and usage_daily keep the lifetime totals, and the invariant
becomes counters = rollup sums (request_logs then holds only the recent part).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from llmtally.db.database import Database
from llmtally.db.sql_compose import sql
from llmtally.errors import UnknownUser, UserInputError

BATCH = 5000


@dataclass
class DeletionReport:
    user_id: str
    calls_anonymised: int = 0
    sessions_deleted: int = 0
    threads_deleted: int = 0
    quarantined_deleted: int = 0


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# One user's rows of a rollup, deleted and added to the anonymous rows (user_id NULL) of the same key.
# The additive measures of every rollup (migrations 0001, 0004, 0008, 0009).
_ROLLUP_MEASURES = (
    "requests",
    "successes",
    "failures",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "cost",
    "unpriced_requests",
    "latency_ms_sum",
    "attempts",
    "failed_attempts",
    "cache_hits",
    "estimated_requests",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "audio_tokens",
    "saved_cost",
)
_MEASURES = sql.SQL(", ").join(map(sql.Identifier, _ROLLUP_MEASURES))
_ADD_MEASURES = sql.SQL(", ").join(
    sql.SQL("{m} = t.{m} + excluded.{m}").format(m=sql.Identifier(m)) for m in _ROLLUP_MEASURES
)
_MERGE_INTO_ANONYMOUS = sql.SQL(
    """
    with gone as (delete from public.{table} where user_id = %(u)s returning *)
    insert into public.{table} as t (user_id, {keys}, {measures})
    select null, {keys}, {measures}
      from gone where requests > 0
    on conflict on constraint {key} do update set {add}
    """
)


# The rollups with a user column and the rest of their key.
_USER_ROLLUPS = (
    ("usage_daily", ("day", "model", "provider")),
    ("usage_monthly", ("month", "model", "provider")),
    ("usage_monthly_users", ("month",)),
)


def check_deletable(db: Database, user_id: str) -> None:
    """Raise UnknownUser unless there is something of USER_ID to delete (a profile, a chat login or thread)."""
    if not user_id:
        raise UserInputError("the user id must not be empty")
    known = db.fetch_one(
        "select (select count(*) from public.user_profiles where user_id = %(u)s)"
        " + (select count(*) from chat.users where identifier = %(u)s)"
        " + (select count(*) from chat.threads where user_identifier = %(u)s) as n",
        {"u": user_id},
    )
    if not known or not known["n"]:
        raise UnknownUser(user_id)


def delete_user(db: Database, user_id: str, *, batch: int = BATCH) -> DeletionReport:
    """Remove a user's profile, content and personal data; keep their usage as anonymous totals."""
    check_deletable(db, user_id)
    report = DeletionReport(user_id)
    while True:  # one short transaction per batch; the trigger moves the usage to anonymous
        n = db.execute(
            """
            update public.request_logs set user_profile_id = null, end_user = null, session_id = null,
                   messages = null, response = null, error = null, metadata = '{}'::jsonb
             where id in (select id from public.request_logs
                           where user_profile_id = %(u)s or end_user = %(u)s limit %(batch)s)
            """,
            {"u": user_id, "batch": batch},
        )
        report.calls_anonymised += n
        # The attempts of those calls: no user, no end user, no error text (it may quote the prompt).
        n += db.execute(
            """
            update public.request_attempts set user_profile_id = null, end_user = null, error = null
             where id in (select id from public.request_attempts
                           where user_profile_id = %(u)s or end_user = %(u)s limit %(batch)s)
            """,
            {"u": user_id, "batch": batch},
        )
        if n == 0:
            break
    with db.transaction() as conn:
        # Rollup rows left from calls that retention already removed: merge them into the anonymous
        # rows (usage_daily_totals has no user: it is unchanged).
        for table, keys in _USER_ROLLUPS:
            merge = _MERGE_INTO_ANONYMOUS.format(
                table=sql.Identifier(table),
                keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
                key=sql.Identifier(f"{table}_key"),
                measures=_MEASURES,
                add=_ADD_MEASURES,
            )
            conn.execute(merge, {"u": user_id})
        # Budgets, limits and alerts go with the profile (cascade); calls in flight and the rate window
        # name the user without a foreign key.
        conn.execute("delete from public.budget_reservations where user_id = %s", (user_id,))
        conn.execute("delete from public.rate_limit_log where user_id = %s", (user_id,))
        report.sessions_deleted = conn.execute("delete from public.sessions where user_id = %s", (user_id,)).rowcount
        conn.execute("delete from public.web_sessions where user_id = %s", (user_id,))  # logged out at once
        report.threads_deleted = conn.execute(
            "delete from chat.threads where user_identifier = %(u)s"
            " or user_id in (select id from chat.users where identifier = %(u)s)",
            {"u": user_id},
        ).rowcount
        conn.execute("delete from chat.users where identifier = %s", (user_id,))
        pattern = f"%{_like_escape(json.dumps(user_id))}%"
        report.quarantined_deleted = conn.execute(
            "delete from public.quarantine where raw_event like %s", (pattern,)
        ).rowcount
        conn.execute("delete from public.user_profiles where user_id = %s", (user_id,))
    return report


@dataclass
class RetentionReport:
    content_cleared: int = 0
    rows_deleted: int = 0
    quarantine_deleted: int = 0


BUDGET_PERIOD_DAYS = 32  # longer than the longest calendar period a budget can have (a month)


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
        row = db.fetch_one("select count(*) as n from public.budgets where period <> 'lifetime'")
        if row and row["n"]:
            raise UserInputError(
                f"--rows-days must be at least {BUDGET_PERIOD_DAYS} while daily, weekly or monthly budgets exist"
                f" (got {rows_days}): their spend is read from the calls of the current period"
            )
    report = RetentionReport()
    if rows_days is not None:
        while True:
            n = db.execute(
                "delete from public.request_logs where id in (select id from public.request_logs"
                " where created_at < now() - make_interval(days => %(d)s) limit %(batch)s)",
                {"d": rows_days, "batch": batch},
            )
            report.rows_deleted += n
            if n == 0:
                break
        report.quarantine_deleted = db.execute(
            "delete from public.quarantine where created_at < now() - make_interval(days => %s)", (rows_days,)
        )
    if content_days is not None:
        while True:
            n = db.execute(
                "update public.request_logs set messages = null, response = null where id in ("
                " select id from public.request_logs where created_at < now() - make_interval(days => %(d)s)"
                " and (messages is not null or response is not null) limit %(batch)s)",
                {"d": content_days, "batch": batch},
            )
            report.content_cleared += n
            if n == 0:
                break
    return report
