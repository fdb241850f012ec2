"""Migrations: applied in order, recorded, idempotent, safe under concurrency, Supabase-compatible."""

from __future__ import annotations

import threading

import psycopg
import pytest

from llmtally.db import Database
from llmtally.db.migrations import ensure_current, load_migrations, migrate, status
from llmtally.errors import SchemaNotReady

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
