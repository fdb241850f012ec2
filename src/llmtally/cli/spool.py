"""spool status|replay: usage events journaled locally and not yet in the database."""

from __future__ import annotations

from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.ledger import spool as spool_api
from llmtally.ledger.postgres_sink import PostgresSink
from llmtally.ledger.writer import LedgerWriter
from llmtally.wording import plural


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
    table = Listing(
        f"Spool {directory}",
        [Column("segment", "id"), Column("events", "number"), Column("bytes", "number"), Column("owner")],
        empty=f"the spool is empty ({directory})",
    )
    for s in segments:
        table.add_row(s.path.name, f"{s.events:,}", f"{s.bytes:,}", "running process" if s.live else "gone: to replay")
    table.print(console)
    waiting = sum(s.events for s in segments if not s.live)
    console.print(f"{plural(waiting, 'event')} left by stopped processes (`llmtally spool replay` writes them)")


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
        f"replayed {plural(replayed, 'event')}: {stats.written} new, {stats.duplicates} already recorded,"
        f" {stats.quarantined} quarantined"
    )
