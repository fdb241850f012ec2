"""Teams: a team is billed like a user. Its id ``team:SLUG`` is a profile of its own, so its counters,
rollups, budgets and rate limits are a user's (kept by the same triggers, reserved under the same lock),
and its API tokens (team keys) bill it. Members read the team's usage and budgets under row-level
security (migration 0022), not its calls, which hold other members' prompts.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import UnknownUser, UserInputError

TEAM_PREFIX = "team:"
_SLUG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")


class Team(BaseModel):
    """A team with its members and its usage this month (UTC)."""

    model_config = ConfigDict(frozen=True)

    team_id: str
    name: str
    created_at: dt.datetime
    members: list[str]
    requests: int
    tokens: int
    cost: Decimal


class TeamUsage(BaseModel):
    """A team's usage this month (UTC), as a member reads it."""

    model_config = ConfigDict(frozen=True)

    team_id: str
    name: str
    requests: int
    tokens: int
    cost: Decimal


def team_id(name: str) -> str:
    """The team id of ``eng`` or ``team:eng``: lowercase letters, digits, ``_ . -``, up to 63 characters."""
    slug = name.strip().removeprefix(TEAM_PREFIX)
    if not _SLUG.fullmatch(slug):
        raise UserInputError(
            f"a team is named with lowercase letters, digits, '_', '.' or '-' (up to 63, got {name!r})"
        )
    return TEAM_PREFIX + slug


def is_team(user_id: str) -> bool:
    return user_id.startswith(TEAM_PREFIX)


def create_team(db: Database, name: str, *, title: str = "") -> str:
    """Create the team ``name`` (its profile and its row) and return its id; an existing team is an error."""
    tid = team_id(name)
    with db.transaction() as conn:
        conn.execute(query("create_team_profile"), {"team_id": tid, "name": title or None})
        if conn.execute(query("create_team"), {"team_id": tid, "name": title}).fetchone() is None:
            raise UserInputError(f"the team {tid} exists already")
    return tid


def _existing_team(db: Database, name: str) -> str:
    tid = team_id(name)
    if not db.fetch_all(query("team_exists"), {"team_id": tid}):
        raise UserInputError(f"no team {tid} (see `llmtally teams list`)")
    return tid


def add_member(db: Database, name: str, user_id: str) -> bool:
    """Add ``user_id`` to the team; False if they were a member already."""
    tid = _existing_team(db, name)
    if is_team(user_id):
        raise UserInputError(f"{user_id} is a team: a member is a user")
    if not db.fetch_all(query("user_exists"), {"user_id": user_id}):
        raise UnknownUser(user_id)
    return bool(db.fetch_all_in_transaction(query("add_team_member"), {"team_id": tid, "user_id": user_id}))


def remove_member(db: Database, name: str, user_id: str) -> None:
    tid = _existing_team(db, name)
    if not db.fetch_all_in_transaction(query("remove_team_member"), {"team_id": tid, "user_id": user_id}):
        raise UserInputError(f"{user_id} is not a member of {tid}")


def list_teams(db: Database) -> list[Team]:
    return [Team.model_validate(r) for r in db.fetch_all(query("list_teams"), {})]


def teams_of(db: Database, user_id: str) -> list[TeamUsage]:
    """The teams ``user_id`` belongs to, with their usage this month, read as that user (RLS)."""
    return [TeamUsage.model_validate(r) for r in db.fetch_all_as_user(user_id, query("my_teams_usage"), {})]
