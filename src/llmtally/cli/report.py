"""report: a month's usage by model and top users, or one user's detail."""

from __future__ import annotations

import datetime as dt
import re

import click

from llmtally.analytics import Analytics
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.errors import UserInputError
from llmtally.wording import money, plural


def parse_month(value: str | None) -> tuple[dt.date, dt.date]:
    if value is None:
        today = dt.datetime.now(dt.UTC).date()
        start = today.replace(day=1)
    else:
        if not re.fullmatch(r"\d{4}-\d{2}", value):
            raise UserInputError(f"--month must look like 2026-01 (got {value!r})")
        year, month = int(value[:4]), int(value[5:])
        if not 1 <= month <= 12:
            raise UserInputError(f"--month has no month {month:02d} (got {value!r})")
        start = dt.date(year, month, 1)
    end = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


@cli.command()
@click.option("--user", "user_id", metavar="ID", help="One user's report (default: everyone).")
@click.option("--month", metavar="YYYY-MM", help="Calendar month, UTC (default: this month).")
@pass_state
def report(state: State, user_id: str | None, month: str | None) -> None:
    """Usage for a month: by model (with failures) and top users; or one user's detail."""
    since, until = parse_month(month)
    label = since.strftime("%B %Y")
    with state.database() as db, Analytics(db) as analytics:
        if user_id:
            _user_report(analytics, user_id, since, until, label)
        else:
            _month_report(analytics, since, until, label)


def _user_report(analytics: Analytics, user_id: str, since: dt.date, until: dt.date, label: str) -> None:
    a = analytics.user_analytics(user_id)
    console.print(f"[bold]{a.full_name or a.user_id}[/] ({a.user_id}, {a.email or 'no email'})")
    console.print(
        f"lifetime: {plural(a.requests.total, 'request')} ({a.requests.failure:,} failed,"
        f" {a.requests.cancelled:,} cancelled), {plural(a.tokens.total, 'token')}, {money(a.cost)}"
    )
    breakdown = analytics.user_token_breakdown(user_id, since, until)
    by_model = Listing(
        f"{label} by model",
        [
            Column("model", "id"),
            Column("provider", drop=1),
            Column("requests", "number"),
            Column("tokens", "number"),
            Column("cost", "number"),
        ],
        empty=f"no requests by {user_id} in {label}",
    )
    for m in breakdown.by_model:
        by_model.add_row(
            m.model,
            m.provider,
            f"{m.requests:,}",
            f"{m.total_tokens:,}",
            money(m.cost) + (" (+unpriced)" if m.unpriced_requests else ""),
        )
    by_model.print(console)
    history = analytics.user_request_history(user_id, limit=10)
    recent = Listing(
        "Last requests",
        [
            Column("when (UTC)", "id"),
            Column("model", "id"),
            Column("status"),
            Column("tokens", "number"),
            Column("cost", "number"),
        ],
        empty=f"no requests by {user_id} yet",
    )
    for r in history.items:
        recent.add_row(
            r.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.model,
            r.status + (f" ({', '.join(r.notes)})" if r.notes else ""),
            f"{r.tokens_used:,}",
            money(r.total_cost),
        )
    recent.print(console)


def _month_report(analytics: Analytics, since: dt.date, until: dt.date, label: str) -> None:
    models = analytics.totals_by_model(since, until)
    if not models:
        console.print(f"no requests in {label}")
        return
    by_model = Listing(
        f"{label}: usage by model",
        [
            Column("model", "id"),
            Column("provider", drop=1),
            Column("requests", "number"),
            Column("failures", "number"),
            Column("retries", "number", drop=3),
            Column("cache hits", "number", drop=2),
            Column("tokens", "number"),
            Column("cost", "number"),
        ],
        empty=f"no requests in {label}",
    )
    for m in models:
        estimated = f" ({money(m.estimated_cost)} estimated)" if m.estimated_requests else ""
        by_model.add_row(
            m.model,
            m.provider,
            f"{m.requests:,}",
            f"{m.failures:,}",
            f"{m.retries:,}",
            f"{m.cache_hits:,}" + (f" (saved {money(m.saved_cost)})" if m.saved_cost else ""),
            f"{m.total_tokens:,}",
            money(m.cost) + estimated + (f" (+{m.unpriced_requests:,} unpriced)" if m.unpriced_requests else ""),
        )
    by_model.print(console)
    top = Listing(
        f"{label}: top users by cost",
        [
            Column("user id", "id"),
            Column("email", drop=1),
            Column("requests", "number"),
            Column("tokens", "number", drop=2),
            Column("cost", "number"),
        ],
        empty=f"no known user made a request in {label} (their calls are anonymous)",
    )
    for u in analytics.top_users(since, until, limit=10):
        top.add_row(u.user_id, u.email or "", f"{u.requests:,}", f"{u.total_tokens:,}", money(u.cost))
    top.print(console)
