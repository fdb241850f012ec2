"""Migration 0009 upgrades a database that holds usage at 0008: every row becomes a call of one attempt,
the new measures are backfilled, every invariant holds, and the writers work on the upgraded schema."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest

from llmtally import UsageEvent
from llmtally.db import Database
from llmtally.db.migrations import MIGRATIONS_TABLE, load_migrations, migrate
from llmtally.ledger.postgres_sink import write_events
from tests.support.invariants import assert_counters_match_ledger, assert_counters_match_rollup

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)


def _migrate_to(url: str, version: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(MIGRATIONS_TABLE)
        for m in load_migrations():
            if m.version <= version:
                with conn.transaction():
                    conn.execute(m.sql.encode())
                    conn.execute(
                        "insert into llmtally_migrations (version, name, checksum) values (%s, %s, %s)",
                        (m.version, m.name, m.checksum),
                    )


def test_a_database_with_usage_at_0008_upgrades_and_keeps_every_invariant(empty_db_url: str) -> None:
    _migrate_to(empty_db_url, 8)
    with Database(empty_db_url) as db:
        # written by the 0008 writer itself: counters, three rollups and a budget's reservation
        db.execute("insert into user_profiles (user_id) values ('github_1'), ('github_2')")
        db.execute(
            "select llmtally_insert_events(array(select row(n,"
            "  case when n %% 3 = 0 then null when n %% 3 = 1 then 'github_1' else 'github_2' end, null, null,"
            "  'old-' || n,"
            "  case when n %% 6 = 0 then 'openai/gpt-4o' when n %% 2 = 0 then 'gpt-4o' else 'claude-3' end,"
            "  case when n %% 2 = 0 then 'openai' else 'anthropic' end, n, 2 * n, 3 * n,"
            "  case when n %% 5 = 0 then null else n / 1000.0 end,"
            "  case when n %% 5 = 0 then 'unpriced' else 'priced' end, null, null,"
            "  case when n %% 4 = 0 then 'failure' when n %% 7 = 0 then 'cancelled' else 'success' end,"
            "  null, null, n, false, '{}', now() - (n - 1) * interval '1 day')::llmtally_event"
            " from generate_series(1, 90) n))"
        )
        db.execute("insert into budgets (user_profile_id, period, limit_usd) values ('github_1', 'monthly', 100)")
        db.execute("select * from llmtally_reserve('github_1', 'in-flight', 'gpt-4o', 'openai', 1, 1, 0.5)")
        before = db.fetch_all(
            "select user_id, request_count, failure_count, tokens_used, total_cost from user_profiles order by 1"
        )

        assert [m.version for m in migrate(db)] == [m.version for m in load_migrations()][8:]  # 0009 and later

        assert_counters_match_ledger(db)
        assert_counters_match_rollup(db)
        assert (
            db.fetch_all(
                "select user_id, request_count, failure_count, tokens_used, total_cost from user_profiles order by 1"
            )
            == before
        )
        calls = db.fetch_one(
            "select count(*) as n, count(*) filter (where call_key = litellm_call_id) as own,"
            " sum(attempt_count) as attempts, sum(failed_attempts) as failed from request_logs"
        )
        assert calls == {"n": 90, "own": 90, "attempts": 90, "failed": 22}
        assert db.fetch_one("select count(*) as n from request_attempts")["n"] == 90
        # one name per model: the Router's "openai/gpt-4o" rows joined the SDK's "gpt-4o"
        models = db.fetch_all("select distinct model, provider from usage_daily where requests > 0 order by 1")
        assert [(m["model"], m["provider"]) for m in models] == [("claude-3", "anthropic"), ("gpt-4o", "openai")]
        assert db.fetch_one("select count(*) as n from request_attempts where model like '%%/%%'")["n"] == 0
        p = db.fetch_one(
            "select request_count, attempt_count, failed_attempt_count, failure_count"
            " from user_profiles where user_id = 'github_1'"
        )
        assert (p["attempt_count"], p["failed_attempt_count"]) == (p["request_count"], p["failure_count"])

        # the upgraded schema takes new attempts of an old call and new calls; the reservation settles
        now = dt.datetime.now(dt.UTC)
        write_events(
            db,
            [
                UsageEvent(
                    "old-4",
                    "gpt-4o",
                    "success",
                    provider="openai",
                    user_profile_id="github_1",
                    prompt_tokens=10,
                    completion_tokens=10,
                    reported_cost=0.25,
                    attempt_key="late-success",
                ),
                UsageEvent(
                    "in-flight",
                    "gpt-4o",
                    "failure",
                    provider="openai",
                    user_profile_id="github_1",
                    created_at=now,
                    attempt_key="f1",
                ),
                UsageEvent(
                    "in-flight",
                    "gpt-4o",
                    "success",
                    provider="openai",
                    user_profile_id="github_1",
                    prompt_tokens=3,
                    completion_tokens=4,
                    reported_cost=0.125,
                    created_at=now,
                    attempt_key="s1",
                ),
            ],
        )
        old4 = db.fetch_one("select status, attempt_count, total_cost from request_logs where call_key = 'old-4'")
        assert old4 == {"status": "success", "attempt_count": 2, "total_cost": Decimal("0.25")}
        assert db.fetch_one("select count(*) as n from budget_reservations")["n"] == 0
        flight = db.fetch_one("select status, total_cost from request_logs where call_key = 'in-flight'")
        assert flight == {"status": "success", "total_cost": Decimal("0.125")}
        assert_counters_match_ledger(db)
