"""export: request_logs as CSV or JSON Lines, streamed from a server-side cursor."""

from __future__ import annotations

import datetime as dt
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmtally.analytics.service import as_date
from llmtally.cli.app import State, cli, pass_state
from llmtally.export import FORMATS, ExportFilter, check_filter, count_rows, export_chunks
from llmtally.wording import plural


@cli.command()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True, help="Output format.")
@click.option("--since", metavar="DATE", help="First UTC day, inclusive (2026-01-01).")
@click.option("--until", metavar="DATE", help="UTC day after the last one, exclusive.")
@click.option("--user", "user_id", metavar="USER_ID", help="Only this user's requests.")
@click.option("--end-user", metavar="NAME", help="Only the requests of this end user (exactly): a team key's member.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: stdout)."
)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@pass_state
def export(
    state: State,
    fmt: str,
    since: str | None,
    until: str | None,
    user_id: str | None,
    end_user: str | None,
    output: Path | None,
    progress: bool | None,
) -> None:
    """Export every recorded request (oldest first) in bounded memory, with all columns."""
    where = ExportFilter(
        since=as_date(since, "--since"), until=as_date(until, "--until"), user_id=user_id, end_user=end_user or None
    )
    errors = Console(stderr=True)
    show = errors.is_terminal if progress is None else progress
    with state.database() as db, ExitStack() as stack:
        check_filter(db, where)  # before the file is opened or a header written
        out: TextIO = stack.enter_context(output.open("w", encoding="utf-8", newline="")) if output else sys.stdout
        written = [0]
        bar: Progress | None = None
        if show:
            bar = stack.enter_context(
                Progress(
                    TextColumn("exporting"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=errors,
                )
            )
            task = bar.add_task("export", total=count_rows(db, where))

        def advance(n: int) -> None:
            written[0] += n
            if bar is not None:
                bar.advance(task, n)

        started = dt.datetime.now(dt.UTC)
        for chunk in export_chunks(db, fmt, where, on_rows=advance):
            out.write(chunk)
        out.flush()
        if show or output:
            seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
            where_to = str(output) if output else "stdout"
            errors.print(f"exported {plural(written[0], 'row')} to {where_to} as {fmt} in {seconds:.1f}s")
