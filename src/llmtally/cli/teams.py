"""teams create|add|remove|list: teams, billed like users (team:SLUG), with members who read their usage."""

from __future__ import annotations

import click

from llmtally import teams as team_api
from llmtally.cli.app import State, cli, console, pass_state
from llmtally.cli.output import Column, Listing
from llmtally.wording import money, plural


@cli.group()
def teams() -> None:
    """Teams: a team key (`tokens create team:SLUG`) bills the team; budgets and limits on team:SLUG hold
    across every call billed to it; members read the team's usage."""


@teams.command("create")
@click.argument("name")
@click.option("--title", default="", help="A readable name, shown beside the id.")
@pass_state
def create(state: State, name: str, title: str) -> None:
    """Create the team NAME (lowercase letters, digits, _ . -); its id is team:NAME."""
    with state.database() as db:
        tid = team_api.create_team(db, name, title=title)
    console.print(f"created {tid}: `llmtally tokens create {tid}` makes a team key, `teams add {name} USER` a member")


@teams.command("add")
@click.argument("name")
@click.argument("user_ids", nargs=-1, required=True)
@pass_state
def add(state: State, name: str, user_ids: tuple[str, ...]) -> None:
    """Add users to the team NAME."""
    with state.database() as db:
        for user_id in user_ids:
            added = team_api.add_member(db, name, user_id)
            console.print(f"{user_id} {'added to' if added else 'is already in'} {team_api.team_id(name)}")


@teams.command("remove")
@click.argument("name")
@click.argument("user_id")
@pass_state
def remove(state: State, name: str, user_id: str) -> None:
    """Remove a user from the team NAME (the team's calls stay the team's)."""
    with state.database() as db:
        team_api.remove_member(db, name, user_id)
    console.print(f"{user_id} removed from {team_api.team_id(name)}")


@teams.command("list")
@pass_state
def list_(state: State) -> None:
    """List teams with their members and this month's usage (UTC)."""
    with state.database() as db:
        rows = team_api.list_teams(db)
    listing = Listing(
        plural(len(rows), "team"),
        [
            Column("team", "id"),
            Column("title", drop=2),
            Column("members"),
            Column("requests", "number"),
            Column("tokens", "number"),
            Column("cost", "number"),
        ],
        empty="no teams yet: `llmtally teams create NAME`",
    )
    for t in rows:
        listing.add_row(
            t.team_id, t.name, ", ".join(t.members) or "-", f"{t.requests:,}", f"{t.tokens:,}", money(t.cost)
        )
    listing.print(console)
