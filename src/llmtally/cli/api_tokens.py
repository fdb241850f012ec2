"""tokens create|list|revoke: per-user API tokens for the JSON API."""

from __future__ import annotations

import datetime as dt
import re

import click

from llmtally import api_tokens as token_api
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.errors import UserInputError


def parse_expiry(value: str | None) -> dt.datetime | None:
    """``30d``, ``12h`` or a date (``2026-12-31``: the token expires at 00:00 UTC that day)."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d{1,5})([dh])", value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        delta = dt.timedelta(days=amount) if unit == "d" else dt.timedelta(hours=amount)
        return dt.datetime.now(dt.UTC) + delta
    try:
        day = dt.date.fromisoformat(value.strip())
    except ValueError:
        raise UserInputError(f"--expires must be like 30d, 12h or 2026-12-31 (got {value!r})") from None
    return dt.datetime.combine(day, dt.time(), dt.UTC)


@cli.group()
def tokens() -> None:
    """API tokens: each acts as one user on /api/v1 and the gateway /v1 (Authorization: Bearer)."""


@tokens.command("create")
@click.argument("user_id")
@click.option("--name", default="", help="What the token is for (shown by `tokens list`).")
@click.option("--expires", metavar="WHEN", help="Expiry: 30d, 12h or a date like 2026-12-31 (default: never).")
@click.option("--new-user", is_flag=True, help="Create USER_ID if it has no profile yet (a script or a service).")
@click.option("--models", metavar="A,B", help="The gateway models it may use, comma-separated (default: every model).")
@click.option(
    "--end-users", is_flag=True, help="The gateway stores a request's `user` field as the call's end user (team keys)."
)
@pass_state
def create(
    state: State, user_id: str, name: str, expires: str | None, new_user: bool, models: str | None, end_users: bool
) -> None:
    """Create a token for USER_ID (or a team: team:SLUG) and print it once (only its hash is stored)."""
    expires_at = parse_expiry(expires)
    with state.database() as db:
        token, record = token_api.create_token(
            db,
            user_id,
            name=name,
            expires_at=expires_at,
            create_user=new_user,
            models=token_api.parse_models(models),
            end_users=end_users,
        )
    # The token goes to stdout alone, so `llmtally tokens create u > file` keeps only it.
    click.echo(token)
    until = f"until {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "with no expiry"
    click.echo(f"token {record.id} ({record.prefix}...) for {user_id} {until}; it is not shown again", err=True)


@tokens.command("list")
@click.option("--user", "user_id", metavar="USER_ID", help="Only this user's tokens.")
@pass_state
def list_(state: State, user_id: str | None) -> None:
    """List tokens (never the tokens themselves: their first characters)."""
    with state.database() as db:
        rows = token_api.list_tokens(db, user_id)
    listing = Listing(
        "API tokens",
        [
            Column("id", "id"),
            Column("prefix", "id"),
            Column("user", "id"),
            Column("name", drop=1),
            Column("created (UTC)", drop=4),
            Column("expires", drop=2),
            Column("last used", drop=3),
            Column("models", drop=5),
            Column("state"),
        ],
        empty=f"no API tokens of {user_id}" if user_id else "no API tokens",
    )
    for t in rows:
        state_text = "revoked" if t.revoked_at else ("active" if t.active else "expired")
        listing.add_row(
            str(t.id),
            t.prefix,
            t.user_id,
            t.name,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
            (", ".join(t.models) if t.models else "every model") + ("; names end users" if t.end_users else ""),
            state_text,
        )
    listing.print(console)


@tokens.command("revoke")
@click.argument("token_id")
@pass_state
def revoke(state: State, token_id: str) -> None:
    """Revoke the token with this id or prefix (see `tokens list`); it stops working at once."""
    with state.database() as db:
        record = token_api.revoke_token(db, token_id)
    console.print(f"revoked token {record.id} ({record.prefix}...) of {record.user_id}")
