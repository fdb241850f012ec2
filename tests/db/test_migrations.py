"""Migrations: applied in order, recorded, idempotent, safe under concurrency, Supabase-compatible."""

from __future__ import annotations

import threading

import psycopg
import pytest

from llmtally.db import Database
from llmtally.db.migrations import ensure_current, load_migrations, migrate, status
from llmtally.errors import SchemaNotReady

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

EXPECTED_TABLES = {
    "user_profiles",
    "sessions",
    "request_logs",
    "usage_daily",
    "usage_monthly",
    "usage_daily_totals",
    "model_prices",
    "llmtally_migrations",
    "api_tokens",
    "quarantine",
}
EXPECTED_VIEWS = {"user_request_analytics", "monthly_token_usage", "user_recent_activity"}
EXPECTED_TABLES |= {"budgets", "budget_reservations", "budget_alerts", "rate_limits", "rate_limit_log"}  # 0006
EXPECTED_VIEWS |= {"user_budget_status"}  # 0006
EXPECTED_TABLES |= {"usage_monthly_users"}  # 0008
EXPECTED_TABLES |= {"request_attempts"}  # 0009
EXPECTED_TABLES |= {"web_sessions"}  # 0011
EXPECTED_TABLES |= {"audit_log"}  # 0017
EXPECTED_TABLES |= {"refusals"}  # 0021
EXPECTED_TABLES |= {"teams", "team_members"}  # 0022


def _relations(db: Database, kind: str) -> set[str]:
    rows = db.fetch_all(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind = %s",
        (kind,),
    )
    return {r["relname"] for r in rows}


def test_migrate_from_zero_builds_the_documented_schema(empty_db_url: str) -> None:
    with Database(empty_db_url) as db:
        with pytest.raises(SchemaNotReady, match="llmtally migrate"):
            ensure_current(db)
        applied = migrate(db)
        assert [m.version for m in applied] == [m.version for m in load_migrations()]
        assert _relations(db, "r") == EXPECTED_TABLES
        assert _relations(db, "v") == EXPECTED_VIEWS
        recorded = db.fetch_all("select version, checksum from llmtally_migrations order by version")
        assert [(r["version"], r["checksum"]) for r in recorded] == [(m.version, m.checksum) for m in applied]
        ensure_current(db)


def test_second_migrate_applies_nothing_and_changes_nothing(db: Database) -> None:
    before = db.fetch_all("select version, applied_at from llmtally_migrations")
    assert migrate(db) == []
    assert db.fetch_all("select version, applied_at from llmtally_migrations") == before
    assert status(db).current


def test_concurrent_migrations_apply_each_step_once(empty_db_url: str) -> None:
    results: list[object] = []

    def run() -> None:
        try:
            with Database(empty_db_url) as db:
                results.append(len(migrate(db)))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [0, 0, 0, len(load_migrations())]
    with Database(empty_db_url) as db:
        assert db.fetch_one("select count(*) as n from llmtally_migrations")["n"] == len(load_migrations())


def test_supabase_roles_and_auth_functions_exist_and_read_claims(db: Database) -> None:
    roles = {r["rolname"] for r in db.fetch_all("select rolname from pg_roles")}
    assert {"anon", "authenticated", "service_role"} <= roles
    with db.as_user("github_42") as conn:
        sub, role = conn.execute("select auth.jwt() ->> 'sub', auth.role()").fetchone()
    assert (sub, role) == ("github_42", "authenticated")
    with db.transaction() as conn:
        claims = '{"sub": "6a1f0e63-1a8a-4d53-9d55-2f6b9a1c0b11"}'
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        assert str(conn.execute("select auth.uid()").fetchone()[0]) == "6a1f0e63-1a8a-4d53-9d55-2f6b9a1c0b11"


def test_existing_auth_functions_are_left_alone(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute("create schema auth")
        conn.execute(
            'create function auth.jwt() returns jsonb language sql stable as $$ select \'{"sub": "mine"}\'::jsonb $$'
        )
    with Database(empty_db_url) as db:
        migrate(db)
        assert db.fetch_one("select auth.jwt() ->> 'sub' as sub")["sub"] == "mine"


def test_app_refuses_a_database_behind_with_a_hint(empty_db_url: str) -> None:
    with Database(empty_db_url) as db, pytest.raises(SchemaNotReady) as info:
        ensure_current(db)
    assert "run `llmtally migrate`" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("version", [3, 7])
def test_upgrading_a_database_with_usage_keeps_every_total(empty_db_url: str, version: int) -> None:
    """A database used at an older version (rows in the ledger and its rollups) upgrades in one step:
    the new rollups are backfilled from the old ones and agree with the ledger."""
    from llmtally.db.migrations import MIGRATIONS_TABLE
    from tests.support.invariants import assert_counters_match_ledger

    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(MIGRATIONS_TABLE)
        for m in load_migrations():
            if m.version <= version:
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "insert into llmtally_migrations (version, name, checksum) values (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )
        conn.execute("insert into user_profiles (user_id) values ('github_1'), ('github_2')")
        conn.execute(
            "insert into request_logs (user_profile_id, litellm_call_id, model, provider, status, cost_status,"
            " total_cost, prompt_tokens, completion_tokens, tokens_used, created_at)"
            " select case when n % 3 = 0 then null when n % 3 = 1 then 'github_1' else 'github_2' end,"
            "        'old-' || n, 'gpt-4o', 'openai', 'success', 'priced', n / 1000.0, n, 2 * n, 3 * n,"
            "        now() - (n - 1) * interval '1 day'"
            "   from generate_series(1, 90) n"
        )
    with Database(empty_db_url) as db:
        assert [m.version for m in migrate(db)] == [m.version for m in load_migrations() if m.version > version]
        assert_counters_match_ledger(db)
        month = db.fetch_one("select date_trunc('month', now() at time zone 'UTC')::date as m")["m"]
        top = db.fetch_all(
            "select user_id, requests from usage_monthly_users where month = %s and user_id is not null order by 1",
            (month,),
        )
        expected = db.fetch_all(
            "select user_profile_id as user_id, count(*) as requests from request_logs"
            " where created_at >= %s and user_profile_id is not null group by 1 order by 1",
            (month,),
        )
        assert top == expected and top
