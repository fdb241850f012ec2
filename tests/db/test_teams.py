"""Teams (migration 0022): billed like users, read by their members under row-level security (usage and
budgets, never the team's calls), managed with one-line errors, and logged in the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from llmtally import Ledger, Settings, UsageEvent, teams
from llmtally import budgets as budget_api
from llmtally.audit import audit_entries
from llmtally.db import Database, acting_as
from llmtally.errors import UnknownUser, UserInputError
from llmtally.privacy import delete_user
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql

ANN, BEN, CAT = "password_ann", "password_ben", "password_cat"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database(db_url) as database:
        for user in (ANN, BEN, CAT):
            database.execute("select public.llmtally_upsert_user(%s)", (user,))
        yield database


def bill(db_url: str, user: str, *calls: str, end_user: str | None = None) -> None:
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for call in calls:
            ledger.record(
                UsageEvent(call, "gpt-4o-mini", "success", provider="openai", user_profile_id=user, end_user=end_user,
                           prompt_tokens=100, completion_tokens=10, reported_cost=0.001,
                           messages=[{"role": "user", "content": f"secret of {call}"}])
            )  # fmt: skip
        assert ledger.flush_sync()


def read_as(db: Database, user: str, sql: str) -> list[tuple[object, ...]]:
    with db.as_user(user) as conn:
        return sorted(conn.execute(sql).fetchall(), key=repr)


def test_members_read_their_team_s_usage_and_budget_but_not_its_calls(db: Database, db_url: str) -> None:
    eng = teams.create_team(db, "eng", title="Engineering")
    ops = teams.create_team(db, "ops")
    teams.add_member(db, "eng", ANN)
    teams.add_member(db, "team:eng", BEN)
    teams.add_member(db, "ops", CAT)
    bill(db_url, eng, "eng-1", "eng-2", end_user=ANN)
    bill(db_url, ops, "ops-1")
    bill(db_url, ANN, "ann-own")
    budget_api.set_budget(db, eng, "monthly", limit_usd=Decimal("5"))

    for member in (ANN, BEN):
        assert read_as(db, member, "select team_id, name from teams") == [(eng, "Engineering")]
        assert read_as(db, member, "select sum(requests)::int from usage_monthly where user_id = 'team:eng'") == [(2,)]
        assert read_as(db, member, "select request_count from user_profiles where user_id = 'team:eng'") == [(2,)]
        assert read_as(db, member, "select user_profile_id from budgets where user_profile_id is not null") == [(eng,)]
        # the team's calls hold the other members' prompts: not theirs to read
        assert read_as(db, member, "select count(*) from request_logs where user_profile_id = 'team:eng'") == [(0,)]
        assert read_as(db, member, "select count(*) from usage_monthly where user_id = 'team:ops'") == [(0,)]
    assert read_as(db, CAT, "select team_id from teams") == [(ops,)]
    assert read_as(db, CAT, "select count(*) from usage_daily where user_id = 'team:eng'") == [(0,)]
    assert read_as(db, ANN, "select user_id from team_members") == [(ANN,)]  # their own membership only
    [mine] = teams.teams_of(db, ANN)
    assert (mine.team_id, mine.requests, mine.tokens, mine.cost) == (eng, 2, 220, Decimal("0.002"))

    teams.remove_member(db, "eng", BEN)
    assert read_as(db, BEN, "select count(*) from usage_monthly where user_id = 'team:eng'") == [(0,)]
    assert teams.teams_of(db, BEN) == []
    listed = {t.team_id: t for t in teams.list_teams(db)}
    assert listed[eng].members == [ANN] and listed[eng].requests == 2 and listed[ops].members == [CAT]
    assert_counters_match_ledger(db)


def test_mistakes_are_one_line_errors_and_change_nothing(db: Database) -> None:
    teams.create_team(db, "eng")
    for bad in ("Eng", "", "a b", "team:", "x" * 64):
        with pytest.raises(UserInputError, match="lowercase letters"):
            teams.create_team(db, bad)
    with pytest.raises(UserInputError, match="exists already"):
        teams.create_team(db, "eng")
    with pytest.raises(UserInputError, match="no team team:nope"):
        teams.add_member(db, "nope", ANN)
    with pytest.raises(UnknownUser):
        teams.add_member(db, "eng", "password_nobody")
    with pytest.raises(UserInputError, match="is a team"):
        teams.add_member(db, "eng", "team:eng")
    with pytest.raises(UserInputError, match="not a member"):
        teams.remove_member(db, "eng", ANN)
    assert teams.add_member(db, "eng", ANN) is True and teams.add_member(db, "eng", ANN) is False
    assert [t.team_id for t in teams.list_teams(db)] == ["team:eng"]
    assert db.fetch_all("select count(*) as n from team_members") == [{"n": 1}]


def test_teams_and_memberships_are_audited_and_a_deleted_member_leaves_the_team(db: Database) -> None:
    with acting_as("cli:admin"):
        teams.create_team(db, "eng")
        teams.add_member(db, "eng", ANN)
        teams.add_member(db, "eng", BEN)
        teams.remove_member(db, "eng", BEN)
    logged = [(e.actor, e.action, e.object, e.subject) for e in audit_entries(db, limit=10)]
    assert ("cli:admin", "insert", "teams", "team:eng") in logged
    assert ("cli:admin", "insert", "team_members", f"{ANN} in team:eng") in logged
    assert ("cli:admin", "delete", "team_members", f"{BEN} in team:eng") in logged
    assert {e.what for e in audit_entries(db, limit=10)} >= {"created team", "added team member", "removed team member"}
    delete_user(db, ANN)
    assert [t.members for t in teams.list_teams(db)] == [[]]
