"""spool status|replay, quarantine list|retry."""

from __future__ import annotations

import click
from rich.table import Table

from llmtally.cli.app import State, cli, console, pass_state
from llmtally.ledger import spool as spool_api
from llmtally.ledger.postgres_sink import PostgresSink
from llmtally.ledger.quarantine import list_quarantine, retry_quarantine
from llmtally.ledger.writer import LedgerWriter


@cli.group()
def spool() -> None:
    """The local spool: usage events accepted but not yet in the database."""


@spool.command("status")
@pass_state
def status(state: State) -> None:
    """Show what waits in the spool under LLMTALLY_HOME, per segment."""
    directory = state.settings.home / "spool"
    segments = spool_api.status(directory)
    if not segments:
        console.print(f"the spool is empty ({directory})")
        return
    table = Table(title=f"Spool {directory}")
    for col in ("segment", "events", "bytes", "owner"):
        table.add_column(col)
    for s in segments:
        table.add_row(s.path.name, str(s.events), str(s.bytes), "running process" if s.live else "gone: to replay")
    console.print(table)
    waiting = sum(s.events for s in segments if not s.live)
    console.print(f"{waiting} events left by stopped processes (`llmtally spool replay` writes them)")


@spool.command("replay")
@pass_state
def replay(state: State) -> None:
    """Write what stopped processes left in the spool to the database, then delete it."""
    settings = state.settings
    with state.database() as db:
        writer = LedgerWriter(
            PostgresSink(db, store_content=settings.content != "none"),
            spool=spool_api.Spool(settings.home / "spool"),
            content=settings.content,
        )
        replayed = writer.replay_orphans()
    stats = writer.stats
    console.print(
        f"replayed {replayed} events: {stats.written} new, {stats.duplicates} already recorded,"
        f" {stats.quarantined} quarantined"
    )


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
