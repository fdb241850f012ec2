"""quarantine list|retry: usage events the database refused."""

from __future__ import annotations

import click

from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.ledger.quarantine import list_quarantine, retry_quarantine


@cli.group()
def quarantine() -> None:
    """Usage events the database refused, kept with the reason."""


@quarantine.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000), help="Most rows shown.")
@pass_state
def list_(state: State, limit: int) -> None:
    """Show quarantined events, oldest first."""
    with state.database() as db:
        rows = list_quarantine(db, limit=limit)
    table = Listing(
        "Quarantined usage events",
        [
            Column("id", "id"),
            Column("call id", "id", drop=3),
            Column("since (UTC)", drop=2),
            Column("attempts", "number"),
            Column("bytes", "number", drop=1),
            Column("reason"),
        ],
        empty="the quarantine is empty",
    )
    for r in rows:
        when = r.created_at.strftime("%Y-%m-%d %H:%M")
        table.add_row(str(r.id), r.litellm_call_id or "", when, f"{r.attempts:,}", f"{r.raw_bytes:,}", r.reason)
    table.print(console)


@quarantine.command("retry")
@click.argument("ids", nargs=-1, type=int)
@pass_state
def retry(state: State, ids: tuple[int, ...]) -> None:
    """Write quarantined events again (all, or the IDS given); accepted ones leave the quarantine."""
    with state.database() as db:
        result = retry_quarantine(db, ids=list(ids) or None, store_content=state.settings.content != "none")
    console.print(
        f"{result.written} written, {result.already_recorded} already recorded, {result.still_refused} still refused"
    )
