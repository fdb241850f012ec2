"""demo: simulated users chatting through LiteLLM, offline, and what the ledger recorded."""

from __future__ import annotations

import asyncio

import click
from rich.table import Table

from llmtally.analytics import Analytics
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import money


@cli.command()
@click.option("--users", "n_users", default=4, show_default=True, type=click.IntRange(1, 4), help="Simulated users.")
@pass_state
def demo(state: State, n_users: int) -> None:
    """Simulate users chatting through LiteLLM (offline) and show what the ledger recorded."""
    from llmtally.demo import run_demo
    from llmtally.ledger.ledger import Ledger

    async def go() -> tuple[int, int, int]:
        async with Ledger(settings=state.settings) as ledger:
            console.print(f"recording to {ledger.db.where if ledger.db else '?'}")
            result = await run_demo(ledger, n_users)
            return result.calls, result.failures, result.cancelled

    calls, failures, cancelled = asyncio.run(go())
    console.print(
        f"[bold]{calls}[/] LiteLLM calls recorded ({failures} failed, {cancelled} cancelled by the user)."
        " Totals include earlier runs."
    )
    with state.database() as db, Analytics(db) as analytics:
        table = Table(title="Usage per user (lifetime)")
        table.add_column("user")
        for col in ("requests", "failed", "cancelled", "tokens", "cost", "unpriced"):
            table.add_column(col, justify="right")
        for summary in analytics.users():
            a = analytics.user_analytics(summary.user_id)
            table.add_row(
                f"{a.full_name or a.user_id}\n[dim]{a.user_id}[/]",
                str(a.requests.total),
                str(a.requests.failure),
                str(a.requests.cancelled),
                f"{a.tokens.total:,}",
                money(a.cost),
                str(a.unpriced_requests),
            )
        console.print(table)
    console.print(
        "Next: [bold]llmtally report --user github_583231[/], [bold]llmtally users[/], "
        "[bold]llmtally prices set openai/acme-internal-llm --input 1 --output 2[/]"
    )
