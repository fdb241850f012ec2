"""users delete, retention apply (users revoke-sessions is in sessions.py)."""

from __future__ import annotations

import click

from llmtally import privacy
from llmtally.cli import commands
from llmtally.cli.app import State, cli, console, pass_state

_list_users = commands.users


@click.group("users", invoke_without_command=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def users(ctx: click.Context, limit: int) -> None:
    """List users with their lifetime usage, biggest spenders first (or `users delete`, `users revoke-sessions`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(_list_users, limit=limit)


cli.add_command(users)  # `llmtally users` still lists; `llmtally users delete` is new


@users.command("delete")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: State, user_id: str, yes: bool) -> None:
    """Delete USER_ID's profile, sessions, chat threads and content; their usage stays as anonymous totals."""
    if not yes:
        click.confirm(f"delete every personal record of {user_id}?", abort=True)
    with state.database() as db:
        report = privacy.delete_user(db, user_id)
    console.print(
        f"deleted {user_id}: {report.calls_anonymised} call(s) kept as anonymous usage,"
        f" {report.sessions_deleted} session(s), {report.threads_deleted} chat thread(s),"
        f" {report.quarantined_deleted} quarantined event(s) removed"
    )


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
        f"content cleared from {report.content_cleared} call(s); {report.rows_deleted} call(s) and"
        f" {report.quarantine_deleted} quarantined event(s) deleted"
    )
