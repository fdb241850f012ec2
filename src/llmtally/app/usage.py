"""The usage panel's text: this month's requests, tokens, cost and models, for one user."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from llmtally.analytics.service import Analytics
from llmtally.budgets import budgets_in_force
from llmtally.db.database import Database
from llmtally.errors import UnknownUser
from llmtally.wording import plural, priced_cost


def usage_markdown(analytics: Analytics, user_id: str) -> str:
    try:
        months = analytics.user_monthly_usage(user_id, months=1)
    except UnknownUser:
        months = []
    if not months:
        return "### This month\nNo requests yet."
    m = months[0]
    lines = [
        f"### {m.month.strftime('%B %Y')}",
        f"**{plural(m.requests, 'request')}** ({m.failures} failed, {m.cancelled} cancelled)",
        f"**{m.total_tokens:,}** tokens ({m.prompt_tokens:,} prompt, {m.completion_tokens:,} completion)",
        f"**{priced_cost(m.total_cost, m.requests, m.unpriced_requests)}** cost",
        "",
        "| model | requests | tokens | cost |",
        "|---|---:|---:|---:|",
    ]
    for model, entry in sorted(m.model_breakdown.items(), key=lambda kv: -kv[1].cost):
        cost = priced_cost(entry.cost, entry.requests, entry.unpriced_requests)
        lines.append(f"| {model} | {entry.requests} | {entry.tokens:,} | {cost} |")
    return "\n".join(lines)


def budget_markdown(db: Database, user_id: str) -> str:
    """The budgets in force for the user and what remains, read as the user (row-level security)."""
    rows = budgets_in_force(db, user_id, as_user=True)
    if not rows:
        return ""
    lines = ["### Budget", "", "| period | limit | spent | remaining | resets |", "|---|---:|---:|---:|---|"]
    for r in rows:
        resets = r["period_end"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if r["period_end"] else "never"
        kind = "" if r["hard"] else " (warning only)"
        if r["limit_usd"] is not None:
            lines.append(
                f"| {r['period']}{kind} | ${_usd(r['limit_usd'])} | ${_usd(r['spent_usd'])}"
                f" | **${_usd(r['remaining_usd'])}** | {resets} |"
            )
        if r["limit_tokens"] is not None:
            lines.append(
                f"| {r['period']}{kind} | {r['limit_tokens']:,} tokens | {r['spent_tokens']:,}"
                f" | **{r['remaining_tokens']:,}** | {resets} |"
            )
    return "\n".join(lines)


def _usd(value: Decimal) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"
