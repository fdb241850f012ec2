"""Row-level security and grants: users read only their own rows, only the server writes.

Reads and writes run through ``Database.as_user`` (Supabase's ``authenticated`` role with PostgREST-style
JWT claims; ``None`` is ``anon``). The catalog tests mirror Supabase's database linter; each also proves
it can fail by reporting exactly a deliberately bad object created in a rolled-back transaction.

Every test runs twice per server: on plain PostgreSQL, and on a database shaped like a fresh Supabase
project (its roles, ``auth`` schema and default privileges granting everything in ``public`` to the
client roles; tests/db/supabase_shape.py) that the same migrations were applied to.
"""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg.errors
import pytest

from llmtally.db import Database
from llmtally.errors import DatabaseError, InsufficientPrivilege

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
}
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
    *BUDGET_TABLES[:4],
]
OPERATIONS = ["insert", "update", "delete", "truncate"]


@pytest.fixture
def db_url(any_db_url: str) -> str:
    """Plain PostgreSQL and Supabase-shaped, in turn (see ``any_db_url`` in tests/conftest.py)."""
    return any_db_url


@pytest.fixture
def data(db: Database) -> Database:
    """A (two calls), B (one call) and one anonymous call, written as the server; the trigger makes profiles."""
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
    db.execute("insert into model_prices (model, input_cost_per_token, output_cost_per_token) values ('m', 1e-6, 2e-6)")
    # budgets, limits, a reservation and an alert each (no default rows: each user reads only their own)
    db.execute(
        "insert into budgets (user_profile_id, period, limit_usd) values (%s, 'daily', 1), (%s, 'daily', 2)", (A, B)
    )
    db.execute("insert into rate_limits (user_profile_id, rpm) values (%s, 10), (%s, 20)", (A, B))
    for user in USERS:
        db.execute("select * from llmtally_reserve(%s, %s, 'gpt-4o', 'openai', 1, 1, 0.001)", (user, f"r-{user}"))
    db.execute(
        "insert into budget_alerts (user_id, budget_id, period, period_start, threshold, spent_usd, spent_tokens, hard)"
        " select user_profile_id, id, period, now(), 0.5, 1, 1, true from budgets"
    )
    return db


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
@pytest.mark.parametrize("relation", [r for r, col in OWNER_COLUMN.items() if col is None])
def test_server_only_tables_are_refused_to_users(data: Database, relation: str, user: str) -> None:
    assert_denied(data, user, f"select * from public.{relation}")


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
        " null, null, null, null, null, null, false, null, 'provider', 0, 0, 0, 0)"  # the fields of 0009
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


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="SET ROLE is checked against the session user (the server's login role, which the migration makes a"
    " member of service_role) and request.jwt.claims is settable by anyone: as_user() guards against query"
    " bugs, not against SQL injected into its transaction",
)
@pytest.mark.parametrize(
    "escape",
    ["set role service_role", "reset role", f"""select set_config('request.jwt.claims', '{{"sub": "{B}"}}', true)"""],
)
def test_sql_inside_as_user_cannot_escape_to_other_users_rows(data: Database, escape: str) -> None:
    with data.as_user(A) as conn:
        try:
            with conn.transaction():
                conn.execute(escape)
        except psycopg.errors.InsufficientPrivilege:
            return
        leaked = conn.execute("select count(*) from request_logs where user_profile_id = %s", (B,)).fetchone()
    assert leaked == (0,), f"after {escape!r}, A reads {leaked[0]} of B's request_logs rows"


# ---------------------------------------------------------------------------------------------------------------
# Catalog lints (after Supabase's database linter): query listing offenders, bad-object probe, what it finds
# ---------------------------------------------------------------------------------------------------------------
AUTH_CALL = r"auth\.(jwt|uid|role|email)\(\)"
LINTS: dict[str, tuple[str, str, list[str]]] = {
    "rls_disabled_in_public": (
        (
            "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')"
            " and not relrowsecurity"
        ),
        "create table public.lint_probe (id int)",
        ["lint_probe"],
    ),
    "view_without_security_invoker": (
        (
            "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('v', 'm')"
            " and not exists (select from unnest(reloptions) o where o ~* '^security_invoker=(true|on|yes|1)$')"
        ),
        "create view public.lint_probe as select 1 as one",
        ["lint_probe"],
    ),
    "function_search_path_mutable": (
        (
            "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname in ('public', 'auth') and pg_get_userbyid(p.proowner) = current_user"
            " and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid"
            "                 and d.deptype = 'e')"
            " and not coalesce(p.proconfig, '{}') && array['search_path=\"\"']"  # Supabase's linter wants exactly ''
        ),
        "create function public.lint_probe() returns int language sql as 'select 1'",
        ["lint_probe()"],
    ),
    "auth_call_not_wrapped_in_select": (
        (
            "select tablename || '.' || policyname from pg_policies, concat(qual, ' ', with_check) q(text)"
            f" where schemaname = 'public' and regexp_count(q.text, '{AUTH_CALL}')"
            f"                                > regexp_count(q.text, '\\( SELECT \\(*{AUTH_CALL}')"
        ),
        (
            "create policy lint_probe on public.model_prices for select to authenticated"
            " using (model = (select auth.jwt() ->> 'sub') or model = auth.jwt() ->> 'sub')"
        ),
        ["model_prices.lint_probe"],
    ),
    "multiple_permissive_policies": (
        (
            "select c.relname || ' ' || r.rolname || ' ' || p.polcmd::text from pg_policy p"
            " join pg_class c on c.oid = p.polrelid join pg_roles r on p.polroles @> array[r.oid]"
            " where c.relnamespace = 'public'::regnamespace and p.polpermissive"
            " group by c.relname, r.rolname, p.polcmd having count(*) > 1"
        ),
        "create policy lint_probe on public.user_profiles for select to authenticated using (user_id = 'x')",
        ["user_profiles authenticated r"],
    ),
    "policy_always_true": (
        (
            "select tablename || '.' || policyname from pg_policies where schemaname = 'public'"
            " and (qual = 'true' or with_check = 'true') and roles && array['anon', 'authenticated', 'public']::name[]"
        ),
        "create policy lint_probe on public.model_prices for select using (true)",
        ["model_prices.lint_probe"],
    ),
    "function_in_public_executable_by_clients": (
        (
            "select p.oid::regprocedure::text from pg_proc p where p.pronamespace = 'public'::regnamespace"
            " and (has_function_privilege('anon', p.oid, 'EXECUTE')"
            "      or has_function_privilege('authenticated', p.oid, 'EXECUTE'))"
        ),
        "create function public.lint_probe() returns int language sql set search_path = '' as 'select 1'",
        ["lint_probe()"],
    ),
    "security_definer_function_executable_by_clients": (
        (
            "select p.oid::regprocedure::text from pg_proc p where p.pronamespace = 'public'::regnamespace"
            " and p.prosecdef and (has_function_privilege('anon', p.oid, 'EXECUTE')"
            "                      or has_function_privilege('authenticated', p.oid, 'EXECUTE'))"
        ),
        (
            "create function public.lint_probe() returns int language sql security definer set search_path = ''"
            " as 'select 1'"
        ),
        ["lint_probe()"],
    ),
    "client_write_privilege": (
        (
            "select c.relname || ': ' || r.name || ' ' || p.priv"
            "  from pg_class c, (values ('anon'), ('authenticated')) r(name),"
            "       (values ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER'),"
            "               ('USAGE'), ('SELECT')) p(priv)"
            " where c.relnamespace = 'public'::regnamespace and case"
            "   when c.relkind = 'S' then p.priv in ('USAGE', 'SELECT', 'UPDATE')"
            "                             and has_sequence_privilege(r.name, c.oid, p.priv)"
            "   when c.relkind not in ('r', 'p', 'v', 'm', 'f') or p.priv in ('USAGE', 'SELECT') then false"
            "   when p.priv in ('INSERT', 'UPDATE', 'REFERENCES') then has_any_column_privilege(r.name, c.oid, p.priv)"
            "   else has_table_privilege(r.name, c.oid, p.priv) end"
        ),
        (
            "create table public.lint_probe (id int generated always as identity, note text);"
            # Supabase's default privileges grant everything on a new table: take them back first
            " revoke all on public.lint_probe, public.lint_probe_id_seq from anon, authenticated;"
            " grant update (note) on public.lint_probe to authenticated;"
            " grant usage on sequence public.lint_probe_id_seq to anon"
        ),
        ["lint_probe: authenticated UPDATE", "lint_probe_id_seq: anon USAGE"],
    ),
    "policy_column_without_index": (
        (
            "select pol.polname || ': ' || d.refobjid::regclass || '.' || a.attname"
            "  from pg_policy pol"
            "  join pg_depend d on d.classid = 'pg_policy'::regclass and d.objid = pol.oid"
            "                  and d.refclassid = 'pg_class'::regclass and d.refobjsubid > 0"
            "  join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid"
            "  join pg_class c on c.oid = pol.polrelid"
            " where c.relnamespace = 'public'::regnamespace"
            "   and not exists (select from pg_index i where i.indrelid = d.refobjid and i.indkey[0] = a.attnum"
            "                   and i.indpred is null and i.indisvalid)"
        ),
        "create policy lint_probe on public.model_prices for select to authenticated using (updated_at > now())",
        ["lint_probe: model_prices.updated_at"],
    ),
}


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
