"""Row-level security and grants: users read only their own rows, only the server writes.

Reads and writes run through ``Database.as_user`` (Supabase's ``authenticated`` role with PostgREST-style
JWT claims; ``None`` is ``anon``). The catalog tests mirror Supabase's database linter; each also proves
it can fail by reporting exactly a deliberately bad object created in a rolled-back transaction.

Every test runs twice per server: on plain PostgreSQL, and on a database shaped like a fresh Supabase
project (its roles, ``auth`` schema and default privileges granting everything in ``public`` to the
client roles; tests/support/supabase_shape.py) that the same migrations were applied to. The tests only
read, or write in transactions that are rolled back, so each module-wide database is seeded once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest

from llmtally.db import Database
from llmtally.db.database import reader_url_for
from llmtally.errors import DatabaseAuthFailed, DatabaseError, InsufficientPrivilege
from tests.support.lints import LINTS

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

A, B = "google_111", "github_222"
USERS = [A, B]
CLIENTS = [None, A, B]  # None: anon

# Every relation in schema public -> the column naming the row's owner (None: no client may read it).
OWNER_COLUMN: dict[str, str | None] = {
    "user_profiles": "user_id",
    "sessions": "user_id",
    "request_logs": "user_profile_id",
    "usage_daily": "user_id",
    "usage_monthly": "user_id",
    "usage_monthly_users": "user_id",
    "usage_daily_totals": None,
    "user_request_analytics": "user_id",
    "monthly_token_usage": "user_id",
    "user_recent_activity": "user_id",
    "model_prices": None,
    "llmtally_migrations": None,
    "api_tokens": None,
    "budgets": "user_profile_id",
    "budget_reservations": "user_id",
    "budget_alerts": "user_id",
    "rate_limits": "user_profile_id",
    "rate_limit_log": None,
    "user_budget_status": "user_id",
    "quarantine": None,
    "request_attempts": "user_profile_id",
    "web_sessions": None,
    "audit_log": None,
    "refusals": None,
    # read by membership (migration 0022), checked by test_members_read_only_their_teams_and_memberships
    "teams": None,
    "team_members": None,
}
TEAM_RELATIONS = ["teams", "team_members"]
BUDGET_TABLES = ["budgets", "budget_reservations", "budget_alerts", "rate_limits", "rate_limit_log"]
TABLES = [
    "user_profiles",
    "sessions",
    "request_logs",
    "usage_daily",
    "usage_monthly",
    "usage_monthly_users",
    "usage_daily_totals",
    "model_prices",
    "llmtally_migrations",
    "api_tokens",
    "quarantine",
    "request_attempts",
    "web_sessions",
    "audit_log",
    "refusals",
    *TEAM_RELATIONS,
    *BUDGET_TABLES,
]
VIEWS = ["user_request_analytics", "monthly_token_usage", "user_recent_activity", "user_budget_status"]
POLICY_TABLES = [
    "user_profiles",
    "sessions",
    "request_logs",
    "usage_daily",
    "usage_monthly",
    "usage_monthly_users",
    "request_attempts",
    *TEAM_RELATIONS,
    *BUDGET_TABLES[:4],
]
OPERATIONS = ["insert", "update", "delete", "truncate"]


@pytest.fixture(scope="module")
def data(module_any_db_url: str) -> Iterator[Database]:
    """Plain PostgreSQL, then Supabase-shaped: A (two calls), B (one call) and one anonymous call.

    Written as the server; the trigger makes the profiles.
    """
    with Database(module_any_db_url) as db:
        db.execute(
            "insert into request_logs (user_profile_id, litellm_call_id, model, provider, cost_status, total_cost,"
            " status, prompt_tokens, completion_tokens, tokens_used, latency_ms) values"
            " (%(a)s, 'a-1', 'gpt-4o', 'openai', 'priced', 0.01, 'success', 10, 20, 30, 100),"
            " (%(a)s, 'a-2', 'claude-3', 'anthropic', 'unpriced', null, 'failure', 0, 0, 0, 5),"
            " (%(b)s, 'b-1', 'gpt-4o', 'openai', 'custom', 0.5, 'success', 100, 200, 300, 80),"
            " (null, 'anon-1', 'gpt-4o', 'openai', 'recomputed', 0.02, 'cancelled', 1, 2, 3, 1)",
            {"a": A, "b": B},
        )
        db.execute(
            "insert into request_attempts (attempt_key, call_key, litellm_call_id, user_profile_id, model, status,"
            " cost_status, total_cost)"
            " select litellm_call_id || ':1', call_key, litellm_call_id, user_profile_id, model, status, cost_status,"
            " total_cost from request_logs"
        )
        db.execute("insert into sessions (session_id, user_id) values ('sess-a', %s), ('sess-b', %s)", (A, B))
        db.execute(
            "insert into model_prices (model, input_cost_per_token, output_cost_per_token) values ('m', 1e-6, 2e-6)"
        )
        # budgets, limits, a reservation and an alert each (no default rows: each user reads only their own)
        db.execute(
            "insert into budgets (user_profile_id, period, limit_usd) values (%s, 'daily', 1), (%s, 'daily', 2)", (A, B)
        )
        db.execute("insert into rate_limits (user_profile_id, rpm) values (%s, 10), (%s, 20)", (A, B))
        for user in USERS:
            db.execute("select * from llmtally_reserve(%s, %s, 'gpt-4o', 'openai', 1, 1, 0.001)", (user, f"r-{user}"))
        db.execute(
            "insert into budget_alerts"
            " (user_id, budget_id, period, period_start, threshold, spent_usd, spent_tokens, hard)"
            " select user_profile_id, id, period, now(), 0.5, 1, 1, true from budgets"
        )
        yield db


@pytest.fixture
def db(data: Database) -> Database:
    """The tests here only read, or write in transactions they roll back: they share the module's seeded database."""
    return data


def run_as(db: Database, user: str | None, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement as the client (A, B or anon) and return its rows, sorted."""
    with db.as_user(user) as conn:
        cur = conn.execute(sql, params)
        return sorted(cur.fetchall(), key=repr) if cur.description else []


def as_server(db: Database, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with db.transaction() as conn:
        return sorted(conn.execute(sql, params).fetchall(), key=repr)


def assert_denied(db: Database, user: str | None, sql: str, params: Any = None) -> None:
    """The statement fails with llmtally's InsufficientPrivilege, translated from the driver's error."""
    with pytest.raises(InsufficientPrivilege, match="permission denied") as info:
        run_as(db, user, sql, params)
    assert isinstance(info.value.__cause__, psycopg.errors.InsufficientPrivilege)


# ---------------------------------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------------------------------
def test_every_relation_in_public_is_covered(db: Database) -> None:
    rows = as_server(
        db,
        "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r','p','v','m','f')",
    )
    assert {r[0] for r in rows} == set(OWNER_COLUMN) == set(TABLES) | set(VIEWS)


@pytest.mark.parametrize("relation", [r for r, col in OWNER_COLUMN.items() if col])
def test_each_user_reads_exactly_their_own_rows(data: Database, relation: str) -> None:
    col = OWNER_COLUMN[relation]
    everyone = as_server(data, f"select * from public.{relation}")
    for user in USERS:
        own = as_server(data, f"select * from public.{relation} where {col} = %s", (user,))
        assert own, f"{user} has no {relation} rows: the test would prove nothing"
        assert len(own) < len(everyone), f"{relation} holds nobody else's rows: the test would prove nothing"
        assert run_as(data, user, f"select * from public.{relation}") == own


@pytest.mark.parametrize("relation", list(OWNER_COLUMN))
def test_anon_is_refused_every_relation(data: Database, relation: str) -> None:
    assert_denied(data, None, f"select * from public.{relation}")


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("relation", [r for r, col in OWNER_COLUMN.items() if col is None and r not in TEAM_RELATIONS])
def test_server_only_tables_are_refused_to_users(data: Database, relation: str, user: str) -> None:
    assert_denied(data, user, f"select * from public.{relation}")


def test_members_read_only_their_teams_and_memberships(data: Database) -> None:
    """A in team:ab, B in no team: A reads the team, its profile and budget and A's membership; B none of them."""
    as_server(data, "insert into user_profiles (user_id) values ('team:ab') returning 1")
    try:
        as_server(data, "insert into teams (team_id) values ('team:ab') returning 1")
        as_server(data, "insert into team_members (team_id, user_id) values ('team:ab', %s) returning 1", (A,))
        as_server(
            data, "insert into budgets (user_profile_id, period, limit_usd) values ('team:ab', 'daily', 3) returning 1"
        )
        assert run_as(data, A, "select team_id from teams") == [("team:ab",)]
        assert run_as(data, A, "select team_id, user_id from team_members") == [("team:ab", A)]
        assert run_as(data, A, "select user_id from user_profiles") == sorted([(A,), ("team:ab",)], key=repr)
        assert run_as(data, A, "select count(*) from budgets where user_profile_id = 'team:ab'") == [(1,)]
        for relation in ("teams", "team_members"):
            assert run_as(data, B, f"select * from {relation}") == []
        assert run_as(data, B, "select user_id from user_profiles") == [(B,)]
    finally:
        as_server(data, "delete from user_profiles where user_id = 'team:ab' returning 1")  # cascades


def test_rls_filters_an_unfiltered_count(data: Database) -> None:
    assert as_server(data, "select count(*) from request_logs") == [(4,)]
    assert run_as(data, A, "select count(*) from request_logs") == [(2,)]
    assert run_as(data, B, "select count(*) from request_logs") == [(1,)]
    assert run_as(data, A, "select litellm_call_id from request_logs") == [("a-1",), ("a-2",)]
    assert run_as(data, A, "select count(*) from request_logs where user_profile_id = %s", (B,)) == [(0,)]


@pytest.mark.parametrize("relation", POLICY_TABLES)
def test_policy_claim_is_evaluated_once_as_an_initplan(data: Database, relation: str) -> None:
    plan = "\n".join(r[0] for r in run_as(data, A, f"explain (costs off) select * from public.{relation}"))
    assert "InitPlan" in plan, plan
    assert "SubPlan" not in plan, plan


# ---------------------------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------------------------
SPECIFIC_WRITES = {  # forging usage for someone else, zeroing one's own counters, deleting one's own logs
    ("request_logs", "insert"): (
        "insert into public.request_logs (user_profile_id, litellm_call_id, model, cost_status, total_cost, status)"
        " values (%(other)s, 'forged', 'gpt-4o', 'priced', 0, 'success')"
    ),
    ("request_logs", "update"): "update public.request_logs set total_cost = 0 where user_profile_id = %(me)s",
    ("request_logs", "delete"): "delete from public.request_logs where user_profile_id = %(me)s",
    ("user_profiles", "insert"): "insert into public.user_profiles (user_id) values ('forged_333')",
    ("user_profiles", "update"): "update public.user_profiles set tokens_used = 0 where user_id = %(me)s",
    ("sessions", "insert"): "insert into public.sessions (session_id, user_id) values ('forged', %(other)s)",
    ("usage_daily", "delete"): "delete from public.usage_daily where user_id = %(me)s",
    ("usage_monthly", "delete"): "delete from public.usage_monthly where user_id = %(me)s",
    ("usage_monthly_users", "update"): "update public.usage_monthly_users set cost = 0 where user_id = %(me)s",
    ("api_tokens", "insert"): (
        "insert into public.api_tokens (user_id, token_hash, prefix) values (%(me)s, repeat('a', 64), 'lt_forged')"
    ),
    ("api_tokens", "update"): "update public.api_tokens set revoked_at = null where user_id = %(me)s",
    ("budgets", "update"): "update public.budgets set limit_usd = 1000000 where user_profile_id = %(me)s",
    ("budget_alerts", "update"): "update public.budget_alerts set notified_at = now()",
    ("rate_limits", "update"): "update public.rate_limits set rpm = null where user_profile_id = %(me)s",
    (
        "request_attempts",
        "update",
    ): "update public.request_attempts set status = 'success' where user_profile_id = %(me)s",
    ("quarantine", "insert"): "insert into public.quarantine (reason, raw_event) values ('forged', '{}')",
    ("quarantine", "update"): "update public.quarantine set reason = 'forged'",
    (
        "audit_log",
        "insert",
    ): "insert into public.audit_log (actor, action, object, subject) values ('me', 'delete', 'x', 'y')",
    ("audit_log", "update"): "update public.audit_log set actor = 'someone else'",
}
GENERIC_WRITES = {
    "insert": "insert into public.{rel} default values",
    "update": "update public.{rel} set {col} = {col}",
    "delete": "delete from public.{rel}",
    "truncate": "truncate public.{rel}",
}


def write_sql(db: Database, relation: str, op: str) -> str:
    if (relation, op) in SPECIFIC_WRITES:
        return SPECIFIC_WRITES[relation, op]
    first_column = as_server(
        db, f"select attname from pg_attribute where attrelid = 'public.{relation}'::regclass and attnum = 1"
    )[0][0]
    return GENERIC_WRITES[op].format(rel=relation, col=first_column)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("table", TABLES)
def test_no_client_can_write_a_table(data: Database, table: str, op: str) -> None:
    sql = write_sql(data, table, op)
    before = as_server(data, f"select * from public.{table}")
    for user in CLIENTS:
        assert_denied(data, user, sql, {"me": user, "other": B if user == A else A})
    assert as_server(data, f"select * from public.{table}") == before


# Views refuse writes before any privilege check when PostgreSQL cannot update through them.
VIEW_WRITE_ERROR = {
    "user_request_analytics": psycopg.errors.InsufficientPrivilege,  # auto-updatable: refused by the missing grant
    "monthly_token_usage": psycopg.errors.ObjectNotInPrerequisiteState,  # "Views containing WITH are not ..."
    "user_recent_activity": psycopg.errors.ObjectNotInPrerequisiteState,  # "... containing GROUP BY ..."
    "user_budget_status": psycopg.errors.ObjectNotInPrerequisiteState,  # "... containing DISTINCT ON / LATERAL"
}


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("view", VIEWS)
def test_no_client_can_write_through_a_view(data: Database, view: str, op: str) -> None:
    expected = psycopg.errors.WrongObjectType if op == "truncate" else VIEW_WRITE_ERROR[view]
    sql = write_sql(data, view, op)
    for user in CLIENTS:
        with pytest.raises(DatabaseError) as info:
            run_as(data, user, sql)
        assert type(info.value.__cause__) is expected, info.value


WRITE_FUNCTION_CALLS = {
    "llmtally_ingest": (
        "select public.llmtally_ingest(%(events)s::jsonb)",
        '[{"litellm_call_id": "forged", "user_profile_id": "%(other)s", "model": "gpt-4o",'
        ' "status": "success", "tokens_used": 1000000}]',
    ),
    "llmtally_insert_events": (
        "select public.llmtally_insert_events(array[row(1, %(other)s, null, null, 'forged', 'gpt-4o', 'openai',"
        " 0, 0, 1000000, 0, 'priced', null, null, 'success', null, null, null, false, '{}', now(),"
        " null, null, null, null, null, null, false, null, 'provider', 0, 0, 0, 0, false, null,"  # 0009, 0016
        " null)"  # 0020
        "::public.llmtally_event])",
        "",
    ),
    "llmtally_upsert_user": ("select public.llmtally_upsert_user(%(other)s, 'forged@example.com')", ""),
    "llmtally_link_session": ("select public.llmtally_link_session('forged', %(other)s)", ""),
    "llmtally_reserve": (
        "select * from public.llmtally_reserve(%(other)s, 'forged', 'gpt-4o', 'openai', 1, 1000000000, 1)",
        "",
    ),
    "llmtally_release": ("select public.llmtally_release('r-' || %(other)s)", ""),
    "llmtally_settle_failed": ("select public.llmtally_settle_failed('r-' || %(other)s)", ""),
    "llmtally_quarantine": (
        "select public.llmtally_quarantine(%(events)s::jsonb)",
        '[{"litellm_call_id": "forged", "reason": "x", "raw_event": "%(other)s"}]',
    ),
}


@pytest.mark.parametrize("function", list(WRITE_FUNCTION_CALLS))
def test_no_client_can_execute_the_write_functions(data: Database, function: str) -> None:
    """Only the server (and service_role) writes, through these functions as well as directly."""
    sql, events = WRITE_FUNCTION_CALLS[function]
    written = ["request_logs", "user_profiles", "sessions", "usage_daily", "usage_monthly", "usage_daily_totals"]
    written += ["usage_monthly_users", "request_attempts"]
    written += ["budget_reservations", "rate_limit_log", "quarantine"]
    before = [as_server(data, f"select * from public.{table}") for table in written]
    for user in CLIENTS:
        other = B if user == A else A
        assert_denied(data, user, sql, {"events": events.replace("%(other)s", other), "other": other})
    assert [as_server(data, f"select * from public.{table}") for table in written] == before


def test_the_authenticated_role_cannot_become_service_role_or_a_superuser(db: Database) -> None:
    """Logged in as ``authenticated`` itself (the least a PostgREST-style authenticator holds), SET ROLE is refused."""
    targets = ["service_role", *(r[0] for r in as_server(db, "select rolname from pg_roles where rolsuper"))]
    with db.transaction() as conn:
        conn.execute("set local session authorization authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (f'{{"sub": "{A}"}}',))
        for target in targets:
            refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied to set role")
            with refused, conn.transaction():
                conn.execute(f'set role "{target}"')
        assert conn.execute("select current_user").fetchone() == ("authenticated",)


@pytest.mark.parametrize(
    "escape", ["set role service_role", "reset role", "set role postgres", "set session authorization postgres"]
)
def test_sql_inside_as_user_cannot_escape_to_other_users_rows(data: Database, escape: str) -> None:
    """as_user logs in as llmtally_authenticator (migration 0014): leaving `authenticated` lands on nothing."""
    # A pool of its own: the escape outlives the transaction on its connection, and must not reach other tests.
    with Database(data.url) as own, own.as_user(A) as conn:
        assert conn.execute("select session_user").fetchone() == ("llmtally_authenticator",)
        try:
            with conn.transaction():
                conn.execute(escape)
                leaked = conn.execute("select count(*) from request_logs where user_profile_id = %s", (B,)).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            return
    assert leaked == (0,), f"after {escape!r}, A reads {leaked[0]} of B's request_logs rows"


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="request.jwt.claims is settable by any role, as under PostgREST: as_user() guards against query bugs,"
    " not against SQL injected into its transaction",
)
def test_sql_inside_as_user_cannot_claim_another_user(data: Database) -> None:
    with Database(data.url) as own, own.as_user(A) as conn:
        conn.execute(f"""select set_config('request.jwt.claims', '{{"sub": "{B}"}}', true)""")
        leaked = conn.execute("select count(*) from request_logs where user_profile_id = %s", (B,)).fetchone()
    assert leaked == (0,), f"A reads {leaked[0]} of B's request_logs rows"


@pytest.mark.parametrize(
    "statement",
    [
        "copy (select 1) to program 'touch {marker}'",
        "reset role; copy (select 1) to program 'touch {marker}'",
        "reset role; copy (select 1) to '{marker}'",
        "reset role; select pg_read_file('PG_VERSION')",
        "reset role; create table public.planted (x int)",
    ],
)
def test_sql_inside_as_user_cannot_run_programs_or_touch_server_files(
    data: Database, statement: str, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    with (
        Database(data.url) as own,
        own.as_user(A) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        conn.transaction(),
    ):
        for part in statement.format(marker=marker).split("; "):
            conn.execute(part)
    assert not marker.exists()


def test_a_reader_login_that_is_refused_gives_one_clear_line(data: Database) -> None:
    reader = reader_url_for(data.url).replace("llmtally_authenticator", "no_such_reader")
    with Database(data.url, reader_url=reader) as own, pytest.raises(DatabaseAuthFailed) as info, own.as_user(A):
        pass
    message = str(info.value)
    assert "\n" not in message and "no_such_reader" in message and "LLMTALLY_READER_DATABASE_URL" in message


def test_the_reader_login_is_member_of_anon_and_authenticated_only(data: Database) -> None:
    role = data.fetch_one(
        "select rolcanlogin, rolinherit, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication,"
        " array(select b.rolname::text from pg_auth_members m join pg_roles b on b.oid = m.roleid"
        "        where m.member = r.oid order by 1) as member_of"
        " from pg_roles r where rolname = 'llmtally_authenticator'"
    )
    assert role == {
        "rolcanlogin": True,
        "rolinherit": False,
        "rolsuper": False,
        "rolcreaterole": False,
        "rolcreatedb": False,
        "rolbypassrls": False,
        "rolreplication": False,
        "member_of": ["anon", "authenticated"],
    }


# ---------------------------------------------------------------------------------------------------------------
# Catalog lints (after Supabase's database linter): query listing offenders, bad-object probe, what it finds
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lint", list(LINTS))
def test_catalog_lint(db: Database, lint: str) -> None:
    query, probe, probe_findings = LINTS[lint]
    with db.connection() as conn:
        try:
            assert [r[0] for r in conn.execute(query)] == []
            conn.execute(probe)  # a known-bad object: the lint must report exactly it
            assert sorted(r[0] for r in conn.execute(query)) == probe_findings
        finally:
            conn.rollback()
