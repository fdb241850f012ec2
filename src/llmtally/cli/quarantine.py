"""quarantine list|retry: usage events the database refused."""

from __future__ import annotations

import click
from rich.table import Table

from llmtally.cli.app import State, cli, console, pass_state
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
    if not rows:
        console.print("the quarantine is empty")
        return
    table = Table(title="Quarantined usage events")
    for col in ("id", "call id", "since (UTC)", "attempts", "bytes", "reason"):
        table.add_column(col)
    for r in rows:
        when = r.created_at.strftime("%Y-%m-%d %H:%M")
        table.add_row(str(r.id), r.litellm_call_id or "", when, str(r.attempts), str(r.raw_bytes), r.reason)
    console.print(table)


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
