"""Costs, prices and times are finite (migration 0013): NaN and ±Infinity are refused by every table
that stores a number or a time, llmtally_ingest names the field it refuses, the writer keeps the rest of
its batch, and a database that already took such values upgrades with counters equal to its rows."""

from __future__ import annotations

import json

import psycopg
import pytest

from llmtally import UsageEvent
from llmtally.db import Database
from llmtally.db.migrations import MIGRATIONS_TABLE, load_migrations, migrate
from llmtally.errors import DatabaseError
from llmtally.ledger.postgres_sink import write_events
from tests.support.invariants import assert_counters_match_ledger, assert_counters_match_rollup

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

INGEST = "select public.llmtally_ingest(%s::jsonb)"


def _event(call_id: str, **fields: object) -> dict[str, object]:
    return {
        "litellm_call_id": call_id,
        "user_profile_id": "github_1",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": "success",
        "prompt_tokens": 10,
        "completion_tokens": 20,
        "tokens_used": 30,
        "total_cost": "0.5",
        "cost_status": "priced",
        **fields,
    }


NON_FINITE = [
    ("total_cost", "NaN"),
    ("total_cost", "Infinity"),
    ("total_cost", "-Infinity"),
    ("saved_cost", "NaN"),
    ("saved_cost", "Infinity"),
    ("created_at", "infinity"),
    ("created_at", "-infinity"),
    ("prompt_tokens", "NaN"),
    ("completion_tokens", "Infinity"),
    ("cached_tokens", 1.5),
]


@pytest.mark.parametrize(("field", "value"), NON_FINITE, ids=[f"{f}={v}" for f, v in NON_FINITE])
def test_ingest_refuses_a_non_finite_value_and_names_the_field(db: Database, field: str, value: object) -> None:
    db.execute("insert into user_profiles (user_id) values ('github_1')")
    events = [_event("good-1"), _event("bad", **{field: value}), _event("good-2")]
    with pytest.raises(DatabaseError) as info:
        db.execute(INGEST, (json.dumps(events),))
    cause = info.value.__cause__
    assert isinstance(cause, psycopg.Error) and cause.sqlstate and cause.sqlstate.startswith("22")
    message = str(cause.diag.message_primary)
    assert field in message and "event 2" in message and "\n" not in message
    counters = db.fetch_one("select request_count, total_cost from user_profiles where user_id = 'github_1'")
    assert counters == {"request_count": 0, "total_cost": 0}
    # the rest of the batch goes in without the bad event
    assert db.fetch_one(INGEST, (json.dumps([events[0], events[2]]),)) == {"llmtally_ingest": 2}
    assert_counters_match_ledger(db)


FINITE_CHECKS = [
    ("request_logs", "total_cost", "NaN"),
    ("request_logs", "created_at", "infinity"),
    ("request_attempts", "total_cost", "Infinity"),
    ("request_attempts", "created_at", "-infinity"),
    ("user_profiles", "total_cost", "NaN"),
    ("user_profiles", "last_request_at", "infinity"),
    ("usage_daily", "cost", "NaN"),
    ("usage_daily_totals", "cost", "Infinity"),
    ("usage_monthly", "saved_cost", "NaN"),
    ("usage_monthly_users", "cost", "NaN"),
    ("model_prices", "input_cost_per_token", "NaN"),
    ("budgets", "limit_usd", "Infinity"),
    ("budgets", "thresholds", "{0.5,NaN}"),
    ("budget_reservations", "usd", "NaN"),
    ("budget_reservations", "expires_at", "infinity"),
    ("audit_log", "at", "-infinity"),  # the seed's price and budget are logged
    ("refusals", "day", "infinity"),
    ("refusals", "last_at", "-infinity"),
]


def _seed_one_of_each(db: Database) -> None:
    db.execute("insert into user_profiles (user_id) values ('github_1')")
    db.execute(INGEST, (json.dumps([_event("seed")]),))
    db.execute("insert into model_prices (model, input_cost_per_token, output_cost_per_token) values ('m', 1, 1)")
    db.execute("insert into budgets (user_profile_id, period, limit_usd) values ('github_1', 'monthly', 100)")
    db.execute("select * from llmtally_reserve('github_1', 'in-flight', 'gpt-4o', 'openai', 1, 1, 0.5)")
    db.execute(
        "insert into refusals (day, user_id, reason, model, refused) values (current_date, 'github_1', 'rpm', 'm', 1)"
    )


@pytest.mark.parametrize(("table", "column", "value"), FINITE_CHECKS, ids=[f"{t}.{c}" for t, c, _ in FINITE_CHECKS])
def test_every_table_refuses_a_non_finite_number_or_time(db: Database, table: str, column: str, value: str) -> None:
    _seed_one_of_each(db)
    with pytest.raises(DatabaseError) as info:
        db.execute(f"update {table} set {column} = %s", (value,))
    assert isinstance(info.value.__cause__, psycopg.errors.CheckViolation), info.value
    assert f"{table}_{column}_finite" in str(info.value)


def test_every_number_and_time_column_has_a_finite_check(db: Database) -> None:
    """A drift guard: a column added later without its check fails here."""
    missing = db.fetch_all(
        """
        select c.relname || '.' || a.attname as col
          from pg_attribute a
          join pg_class c on c.oid = a.attrelid
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname in ('public', 'chat') and c.relkind in ('r', 'p') and a.attnum > 0
           and not a.attisdropped and a.atttypid in ('numeric'::regtype, 'numeric[]'::regtype, 'timestamptz'::regtype)
           and not exists (select from pg_constraint k
                            where k.conrelid = c.oid and k.contype = 'c'
                              and k.conname = c.relname || '_' || a.attname || '_finite')
         order by 1
        """
    )
    assert missing == []


def test_the_writer_keeps_its_batch_when_one_event_reports_a_non_finite_cost(db: Database) -> None:
    events = [
        UsageEvent("w-1", "gpt-4o-mini", "success", user_profile_id="github_1", prompt_tokens=1, completion_tokens=2),
        UsageEvent("w-nan", "gpt-4o-mini", "success", user_profile_id="github_1", reported_cost=float("nan")),
        UsageEvent("w-inf", "gpt-4o-mini", "success", user_profile_id="github_1", saved_cost=float("inf")),
        UsageEvent("w-2", "gpt-4o-mini", "success", user_profile_id="github_1", reported_cost=0.25),
    ]
    assert write_events(db, events) == 4
    costs = {
        r["litellm_call_id"]: r
        for r in db.fetch_all("select litellm_call_id, total_cost, saved_cost from request_logs")
    }
    assert costs["w-inf"]["saved_cost"] is None and costs["w-nan"]["total_cost"] is not None  # repriced, finite
    assert_counters_match_ledger(db)


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


def test_a_database_that_took_non_finite_values_upgrades_with_counters_equal_to_rows(empty_db_url: str) -> None:
    _migrate_to(empty_db_url, 10)
    with Database(empty_db_url) as db:
        db.execute("insert into user_profiles (user_id) values ('github_1'), ('github_2')")
        events = [
            _event("ok-1", created_at="2026-11-02T10:00:00+00:00"),
            _event("nan-cost", total_cost="NaN", created_at="2026-11-02T11:00:00+00:00"),
            _event("inf-cost", total_cost="Infinity", user_profile_id="github_2"),
            _event("inf-time", created_at="infinity", user_profile_id="github_2"),
            _event("ok-2", user_profile_id="github_2", total_cost="0.25"),
        ]
        db.execute(INGEST, (json.dumps(events),))
        db.execute(
            "insert into model_prices (model, input_cost_per_token, output_cost_per_token) values ('m', 'NaN', 1)"
        )
        db.execute(
            "insert into budgets (user_profile_id, period, limit_usd, thresholds)"
            " values ('github_1', 'monthly', 'Infinity', '{0.5,NaN}'), ('github_2', 'monthly', 5, '{NaN,0.8}')"
        )
        broken = db.fetch_one("select total_cost::text as cost from user_profiles where user_id = 'github_1'")
        assert broken == {"cost": "NaN"}  # what 0010 let happen

        assert 11 in [m.version for m in migrate(db)]

        assert_counters_match_ledger(db)
        assert_counters_match_rollup(db)
        profiles = {
            r["user_id"]: r
            for r in db.fetch_all("select user_id, total_cost, request_count, unpriced_count from user_profiles")
        }
        assert profiles["github_1"]["total_cost"] == 0.5 and profiles["github_1"]["unpriced_count"] == 1
        assert (
            profiles["github_2"]["total_cost"] == 0.75
            and profiles["github_2"]["unpriced_count"] == 1
            and profiles["github_2"]["request_count"] == 3
        )
        assert db.fetch_one("select count(*) as n from request_logs")["n"] == 5  # no record lost
        kept = db.fetch_all("select litellm_call_id from quarantine order by 1")
        assert [r["litellm_call_id"] for r in kept] == ["inf-cost", "inf-time", "nan-cost"]
        assert db.fetch_one("select count(*) as n from request_logs where not isfinite(created_at)")["n"] == 0
        assert db.fetch_one("select count(*) as n from model_prices")["n"] == 0
        budgets = db.fetch_all("select user_profile_id, limit_usd, thresholds::text as t from budgets")
        assert budgets == [
            {"user_profile_id": "github_2", "limit_usd": 5, "t": "{0.8}"}
        ]  # an infinite limit limits nothing
        # and the ledger takes usage again
        assert write_events(db, [UsageEvent("after", "gpt-4o-mini", "success", user_profile_id="github_1")]) == 1
        assert_counters_match_ledger(db)
