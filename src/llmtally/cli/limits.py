"""limits set|show: requests and tokens per minute per user."""

from __future__ import annotations

import click

from llmtally import budgets as api
from llmtally.cli.app import DEFAULT_USER, State, cli, console, owner_of, pass_state
from llmtally.cli.output import amount


@cli.group()
def limits() -> None:
    """Requests and tokens per minute per user (USER `default` applies to everyone)."""


@limits.command("set")
@click.argument("user")
@click.option("--rpm", metavar="N", help="Requests per minute (omit: no limit).")
@click.option("--tpm", metavar="N", help="Tokens per minute, by the worst-case estimate (omit: no limit).")
@pass_state
def limits_set(state: State, user: str, rpm: str | None, tpm: str | None) -> None:
    """Set the rate limits of USER (or `default`); a user's own row replaces the default."""
    rpm_n = api.parse_count(rpm, "--rpm")
    tpm_n = api.parse_count(tpm, "--tpm")
    with state.database() as db:
        api.set_rate_limit(db, owner_of(user), rpm=rpm_n, tpm=tpm_n)
    console.print(f"{user}: {amount(rpm_n)} requests and {amount(tpm_n)} tokens per minute")


@limits.command("show")
@click.argument("user", default=DEFAULT_USER)
@pass_state
def limits_show(state: State, user: str) -> None:
    """Show the rate limits in force for USER (default: the default limits)."""
    with state.database() as db:
        if user != DEFAULT_USER:
            api.check_user(db, user)
        limit = api.get_rate_limit(db, owner_of(user))
    if limit is None:
        console.print(f"no rate limit applies to {user}")
        return
    source = "default" if limit.user_profile_id is None else "own"
    console.print(f"{user}: {amount(limit.rpm)} requests and {amount(limit.tpm)} tokens per minute ({source})")
