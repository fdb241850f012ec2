"""demo: simulated users chatting through LiteLLM, offline, and what the ledger recorded."""

from __future__ import annotations

import asyncio

import click

from llmtally.analytics import Analytics
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.wording import money, plural

LOADING = "loading LiteLLM (it takes a few seconds)"


@cli.command()
@click.option("--users", "n_users", default=4, show_default=True, type=click.IntRange(1, 4), help="Simulated users.")
@pass_state
def demo(state: State, n_users: int) -> None:
    """Simulate users chatting through LiteLLM (offline) and show what the ledger recorded."""
    # Importing LiteLLM takes seconds: a spinner in a terminal, a line otherwise, never silence.
    if console.is_terminal:
        with console.status(LOADING):
            _load_litellm()
    else:
        console.print(f"{LOADING}...")
        _load_litellm()
    from llmtally.demo import run_demo
    from llmtally.ledger.ledger import Ledger

    async def go() -> tuple[int, int, int]:
        async with Ledger(settings=state.settings) as ledger:
            console.print(f"recording to {ledger.db.where if ledger.db else '?'}")
            result = await run_demo(ledger, n_users)
            return result.calls, result.failures, result.cancelled

    calls, failures, cancelled = asyncio.run(go())
    console.print(
        f"[bold]{plural(calls, 'LiteLLM call')}[/] recorded ({failures} failed, {cancelled} cancelled by the user)."
        " Totals include earlier runs."
    )
    listing = Listing(
        "Usage per user (lifetime)",
        [
            Column("user", "id"),
            Column("requests", "number"),
            Column("failed", "number", drop=1),
            Column("cancelled", "number", drop=2),
            Column("tokens", "number", drop=3),
            Column("cost", "number"),
            Column("unpriced", "number", drop=4),
        ],
        empty="no usage recorded",
    )
    with state.database() as db, Analytics(db) as analytics:
        for summary in analytics.users():
            a = analytics.user_analytics(summary.user_id)
            listing.add_row(
                f"{a.full_name or a.user_id}\n[dim]{a.user_id}[/]",
                f"{a.requests.total:,}",
                f"{a.requests.failure:,}",
                f"{a.requests.cancelled:,}",
                f"{a.tokens.total:,}",
                money(a.cost),
                f"{a.unpriced_requests:,}",
            )
    listing.print(console)
    console.print(
        "Next: [bold]llmtally report --user github_583231[/], [bold]llmtally users[/], "
        "[bold]llmtally prices set openai/acme-internal-llm --input 1 --output 2[/]"
    )


def _load_litellm() -> None:
    """Import LiteLLM now (the ledger's callback needs it), rather than silently inside the first call."""
    import llmtally.integrations.litellm.callback  # noqa: F401
