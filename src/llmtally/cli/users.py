"""users: list users (the group's default), users delete, users revoke-sessions."""

from __future__ import annotations

import click

from llmtally import privacy
from llmtally.analytics import Analytics
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.web_sessions import revoke_user_sessions, revoke_user_tokens
from llmtally.wording import money, plural


@cli.group("users", invoke_without_command=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def users(ctx: click.Context, limit: int) -> None:
    """List users with their lifetime usage, biggest spenders first (or `users delete`, `users revoke-sessions`)."""
    if ctx.invoked_subcommand is None:
        state = ctx.find_object(State)
        assert state is not None, "the root command sets ctx.obj"
        list_users(state, limit)


def list_users(state: State, limit: int) -> None:
    with state.database() as db, Analytics(db) as analytics:
        rows = analytics.users(limit)
    listing = Listing(
        plural(len(rows), "user"),
        [
            Column("user id", "id"),
            Column("email", drop=2),
            Column("name", drop=1),
            Column("requests", "number"),
            Column("tokens", "number", drop=4),
            Column("cost", "number"),
            Column("last request", drop=3),
        ],
        empty="no users yet: a user appears with their first call or login",
    )
    for u in rows:
        listing.add_row(
            u.user_id,
            u.email or "",
            u.full_name or "",
            f"{u.request_count:,}",
            f"{u.tokens_used:,}",
            money(u.total_cost),
            u.last_request_at.strftime("%Y-%m-%d %H:%M") if u.last_request_at else "",
        )
    listing.print(console)


@users.command("delete")
@click.argument("user_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def delete(state: State, user_id: str, yes: bool) -> None:
    """Delete USER_ID's profile, sessions, chat threads and content; their usage stays as anonymous totals."""
    with state.database() as db:
        privacy.check_deletable(db, user_id)  # an unknown user is an error before any question
        if not yes:
            click.confirm(f"delete every personal record of {user_id}?", abort=True)
        report = privacy.delete_user(db, user_id)
    console.print(
        f"deleted {user_id}: {plural(report.calls_anonymised, 'call')} kept as anonymous usage,"
        f" {plural(report.sessions_deleted, 'session')}, {plural(report.threads_deleted, 'chat thread')},"
        f" {plural(report.quarantined_deleted, 'quarantined event')} removed"
    )


@users.command("revoke-sessions")
@click.argument("user_id")
@click.option("--tokens", "with_tokens", is_flag=True, help="Also revoke the user's API tokens.")
@pass_state
def revoke_sessions(state: State, user_id: str, with_tokens: bool) -> None:
    """End every chat login of USER_ID at once: pages, API and open chats must log in again.

    A password login's user id is password_NAME. API tokens keep working unless --tokens is given.
    """
    with state.database() as db:
        ended = revoke_user_sessions(db, user_id)
        revoked = revoke_user_tokens(db, user_id) if with_tokens else None
    console.print(f"ended {plural(ended, 'login session')} of {user_id}")
    if revoked is None:
        console.print(
            f"API tokens of {user_id} still work: add --tokens, or see `llmtally tokens list --user {user_id}`"
        )
    else:
        console.print(f"revoked {plural(revoked, 'API token')} of {user_id}")
