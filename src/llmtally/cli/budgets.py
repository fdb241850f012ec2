"""budgets set|show|list|delete: spend and token budgets per user and period."""

from __future__ import annotations

import click

from llmtally import budgets as api
from llmtally.cli.app import DEFAULT_USER, State, cli, console, owner_of, pass_state
from llmtally.cli.output import Column, Listing, amount


@cli.group()
def budgets() -> None:
    """Spend and token budgets per user and period (USER `default` applies to everyone)."""


@budgets.command("set")
@click.argument("user")
@click.option(
    "--period",
    required=True,
    metavar="PERIOD",
    help="daily, weekly (from Monday), monthly or lifetime; calendar periods follow --timezone.",
)
@click.option("--usd", metavar="USD", help="Spend limit in USD.")
@click.option("--tokens", metavar="N", help="Token limit (prompt + completion).")
@click.option("--soft", is_flag=True, help="Only warn at the thresholds; never refuse a call.")
@click.option("--thresholds", metavar="LIST", help="Warning levels, e.g. 50%,80%,100% (the default) or 0.9,1.")
@click.option("--timezone", "timezone", default="UTC", show_default=True, help="IANA zone the periods follow.")
@pass_state
def set_(
    state: State,
    user: str,
    period: str,
    usd: str | None,
    tokens: str | None,
    soft: bool,
    thresholds: str | None,
    timezone: str,
) -> None:
    """Set the budget of USER (or `default`) for one period, replacing the one there was."""
    period = api.parse_period(period)
    limit_usd = api.parse_usd(usd, "--usd")
    limit_tokens = api.parse_count(tokens, "--tokens")
    levels = api.parse_thresholds(thresholds)
    api.check_timezone(timezone)
    with state.database() as db:
        b = api.set_budget(
            db,
            owner_of(user),
            period,
            limit_usd=limit_usd,
            limit_tokens=limit_tokens,
            hard=not soft,
            thresholds=levels,
            timezone=timezone,
        )
    limits = " and ".join(
        x
        for x in (
            amount(b.limit_usd) if b.limit_usd is not None else "",
            amount(b.limit_tokens, " tokens") if b.limit_tokens is not None else "",
        )
        if x
    )
    kind = "hard" if b.hard else "soft"
    console.print(f"{user}: {kind} {b.period} budget of {limits} ({b.timezone})")


@budgets.command("show")
@click.argument("user")
@pass_state
def show(state: State, user: str) -> None:
    """Show the budgets in force for USER now: spent, reserved, remaining, reset time."""
    with state.database() as db:
        api.check_user(db, user)
        rows = api.budget_status(db, user)
    table = Listing(
        f"Budgets of {user}",
        [
            Column("period"),
            Column("from", drop=2),
            Column("kind", drop=1),
            Column("limit", "number"),
            Column("spent", "number"),
            Column("reserved", "number"),
            Column("remaining", "number"),
            Column("resets (UTC)"),
        ],
        empty=f"no budget applies to {user}",
    )
    for s in rows:
        for unit, limit, spent, reserved, remaining in (
            ("usd", s.limit_usd, s.spent_usd, s.reserved_usd, s.remaining_usd),
            ("tokens", s.limit_tokens, s.spent_tokens, s.reserved_tokens, s.remaining_tokens),
        ):
            if limit is None:
                continue
            resets = s.resets_at.strftime("%Y-%m-%d %H:%M") if s.resets_at else "never"
            table.add_row(
                s.period,
                "default" if s.owner is None else "user",
                "hard" if s.hard else "soft",
                amount(limit, "" if unit == "usd" else " tokens"),
                amount(spent),
                amount(reserved),
                amount(remaining),
                resets,
            )
    table.print(console)


@budgets.command("list")
@pass_state
def list_(state: State) -> None:
    """List every budget (the defaults first)."""
    with state.database() as db:
        rows = api.list_budgets(db)
    table = Listing(
        "Budgets",
        [
            Column("user", "id"),
            Column("period"),
            Column("kind"),
            Column("USD", "number"),
            Column("tokens", "number"),
            Column("timezone", drop=1),
            Column("thresholds", drop=2),
        ],
        empty="no budgets set",
    )
    for b in rows:
        table.add_row(
            b.user_profile_id or DEFAULT_USER,
            b.period,
            "hard" if b.hard else "soft",
            amount(b.limit_usd),
            amount(b.limit_tokens),
            b.timezone,
            ",".join(f"{(t * 100).normalize():f}%" for t in b.thresholds),
        )
    table.print(console)


@budgets.command("delete")
@click.argument("user")
@click.option("--period", required=True, metavar="PERIOD", help="daily, weekly, monthly or lifetime.")
@pass_state
def delete(state: State, user: str, period: str) -> None:
    """Remove the budget of USER (or `default`) for PERIOD."""
    period = api.parse_period(period)
    with state.database() as db:
        if not api.delete_budget(db, owner_of(user), period):
            raise click.ClickException(f"no {period} budget for {user} (see `llmtally budgets list`)")
    console.print(f"removed the {period} budget of {user}")
