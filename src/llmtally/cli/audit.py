"""audit: who changed budgets, rate limits, prices, API tokens or deleted a user, and when."""

from __future__ import annotations

import click

from llmtally.audit import audit_entries
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.wording import plural


@cli.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="Entries to show.")
@click.option("--who", metavar="ID", help="Only changes made by this actor (web:USER, cli:NAME) or to this user.")
@pass_state
def audit(state: State, limit: int, who: str | None) -> None:
    """Show the audit log, newest first: every change of a budget, limit, price or token, and user deletions."""
    with state.database() as db:
        entries = audit_entries(db, limit=limit, who=who)
    listing = Listing(
        plural(len(entries), "change"),
        [
            Column("time (UTC)"),
            Column("by", "id"),
            Column("what"),
            Column("of", "id"),
            Column("detail", drop=1),
        ],
        empty="no changes recorded yet" if who is None else f"no changes by or to {who}",
    )
    for e in entries:
        listing.add_row(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.what, e.subject, e.detail)
    listing.print(console)
