"""The usage panel's text: this month's requests, tokens, cost and models, for one user."""

from __future__ import annotations

from llmtally.analytics.service import Analytics
from llmtally.errors import UnknownUser


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
        f"**{m.requests}** requests ({m.failures} failed, {m.cancelled} cancelled)",
        f"**{m.total_tokens:,}** tokens ({m.prompt_tokens:,} prompt, {m.completion_tokens:,} completion)",
        f"**${m.total_cost:.6f}** cost",
        "",
        "| model | requests | tokens | cost |",
        "|---|---:|---:|---:|",
    ]
    for model, entry in sorted(m.model_breakdown.items(), key=lambda kv: -kv[1].cost):
        lines.append(f"| {model} | {entry.requests} | {entry.tokens:,} | ${entry.cost:.6f} |")
    return "\n".join(lines)
