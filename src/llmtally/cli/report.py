"""report: a month's usage by model and top users, or one user's detail."""

from __future__ import annotations

import datetime as dt
import re

import click
from rich.table import Table

from llmtally.analytics import Analytics
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import money
from llmtally.errors import UserInputError


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
            a = analytics.user_analytics(user_id)
            console.print(f"[bold]{a.full_name or a.user_id}[/] ({a.user_id}, {a.email or 'no email'})")
            console.print(
                f"lifetime: {a.requests.total:,} requests ({a.requests.failure} failed, {a.requests.cancelled}"
                f" cancelled), {a.tokens.total:,} tokens, {money(a.cost)}"
            )
            breakdown = analytics.user_token_breakdown(user_id, since, until)
            table = Table(title=f"{label} by model")
            for col in ("model", "provider", "requests", "tokens", "cost"):
                table.add_column(col)
            for m in breakdown.by_model:
                table.add_row(
                    m.model,
                    m.provider,
                    str(m.requests),
                    f"{m.total_tokens:,}",
                    money(m.cost) + (" (+unpriced)" if m.unpriced_requests else ""),
                )
            console.print(table)
            history = analytics.user_request_history(user_id, limit=10)
            recent = Table(title="Last requests")
            for col in ("when (UTC)", "model", "status", "tokens", "cost"):
                recent.add_column(col)
            for r in history.items:
                recent.add_row(
                    r.created_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    r.model,
                    r.status + (f" ({', '.join(r.notes)})" if r.notes else ""),
                    str(r.tokens_used),
                    money(r.total_cost),
                )
            console.print(recent)
            return
        models = analytics.totals_by_model(since, until)
        table = Table(title=f"{label}: usage by model")
        for col in ("model", "provider", "requests", "failures", "retries", "cache hits", "tokens", "cost"):
            table.add_column(col)
        for m in models:
            estimated = f" ({money(m.estimated_cost)} estimated)" if m.estimated_requests else ""
            table.add_row(
                m.model,
                m.provider,
                f"{m.requests:,}",
                f"{m.failures:,}",
                f"{m.retries:,}",
                f"{m.cache_hits:,}" + (f" (saved {money(m.saved_cost)})" if m.saved_cost else ""),
                f"{m.total_tokens:,}",
                money(m.cost) + estimated + (f" (+{m.unpriced_requests} unpriced)" if m.unpriced_requests else ""),
            )
        console.print(table)
        top = Table(title=f"{label}: top users by cost")
        for col in ("user id", "email", "requests", "tokens", "cost"):
            top.add_column(col)
        for u in analytics.top_users(since, until, limit=10):
            top.add_row(u.user_id, u.email or "", f"{u.requests:,}", f"{u.total_tokens:,}", money(u.cost))
        console.print(top)
