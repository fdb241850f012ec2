"""retention apply: remove old content and old calls now."""

from __future__ import annotations

import click

from llmtally import privacy
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.wording import plural


@cli.group()
def retention() -> None:
    """Remove old content and old calls; lifetime counters and the daily rollup stay."""


@retention.command("apply")
@click.option("--content-days", type=int, metavar="N", help="Clear messages and responses of calls older than N days.")
@click.option("--rows-days", type=int, metavar="M", help="Delete calls older than M days (totals stay).")
@pass_state
def apply(state: State, content_days: int | None, rows_days: int | None) -> None:
    """Apply retention now, in small batches (safe while the ledger writes)."""
    with state.database() as db:
        report = privacy.apply_retention(db, content_days=content_days, rows_days=rows_days)
    console.print(
        f"content cleared from {plural(report.content_cleared, 'call')}; {plural(report.rows_deleted, 'call')} and"
        f" {plural(report.quarantine_deleted, 'quarantined event')} deleted"
    )
