"""Content modes, user deletion and retention keep usage, cost and every counter consistent."""

from __future__ import annotations

import datetime as dt
import time

import litellm
import pytest

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database
from llmtally.errors import UnknownUser, UserInputError
from llmtally.privacy import apply_retention, delete_user
from tests.support.cli import assert_one_line_error, llmtally
from tests.support.invariants import assert_counters_match_ledger, assert_counters_match_rollup

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

USAGE_COLUMNS = ("prompt_tokens", "completion_tokens", "total_cost", "cost_status")
A, B = "google_111", "github_222"
PERSONAL = (
    "Mail jane.doe@example.com or call +1 (415) 555-0132; card 4111 1111 1111 1111;"
    " key sk-proj-abcdefghijklmnop123456 and Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345"
)


async def test_content_modes_store_the_same_usage_and_cost(db_url: str, db: Database) -> None:
    litellm.suppress_debug_info = True
    for mode in ("full", "redacted", "none"):
        async with Ledger(db_url, settings=Settings(flush_interval_ms=20, content=mode)) as ledger:
            await litellm.acompletion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": PERSONAL}],
                metadata={"user_profile_id": A},
                litellm_call_id=f"mode-{mode}",
                mock_response="Sure, I wrote to jane.doe@example.com.",
            )
            assert await ledger.flush()
    rows = {r["litellm_call_id"]: r for r in db.fetch_all("select * from request_logs")}
    usage = {
        mode: tuple(
            rows[f"mode-{mode}"][k] for k in ("prompt_tokens", "completion_tokens", "total_cost", "cost_status")
        )
        for mode in ("full", "redacted", "none")
    }
    assert usage["full"] == usage["redacted"] == usage["none"] and usage["full"][2] > 0
    full, redacted, none = rows["mode-full"], rows["mode-redacted"], rows["mode-none"]
    assert full["messages"][0]["content"] == PERSONAL
    masked = redacted["messages"][0]["content"]
    for secret in ("jane.doe@example.com", "555-0132", "4111 1111", "sk-proj", "abcdefghijklmnopqrstuvwxyz012345"):
        assert secret not in masked and secret not in str(redacted["response"])
    for marker in ("[EMAIL]", "[PHONE]", "[CARD]", "[SECRET]"):
        assert marker in masked
    assert (none["messages"], none["response"]) == (None, None)
    assert_counters_match_ledger(db)


def _seed(db: Database, ledger: Ledger) -> None:
    ledger.upsert_user_sync(A, email="a@example.com", full_name="Ann")
    ledger.upsert_user_sync(B, email="b@example.com")
    ledger.link_session_sync("sess-a", A)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)
    mid = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    for i, (user, at) in enumerate([(A, old), (A, mid), (A, None), (B, old), (B, mid), (B, None), (None, old)]):
        ledger.record(
            UsageEvent(
                f"call-{i}",
                "gpt-4o-mini",
                "success" if i % 3 else "failure",
                provider="openai",
                user_profile_id=user,
                end_user=user,
                session_id="sess-a" if user == A else None,
                prompt_tokens=10 * (i + 1),
                completion_tokens=5,
                messages=[{"role": "user", "content": f"private {i}"}],
                response={"text": f"answer {i}"},
                metadata={"team": "x"},
                **({"created_at": at} if at else {}),
            )
        )
    assert ledger.flush_sync()
    with db.transaction() as conn:
        uid = conn.execute("insert into chat.users (identifier) values (%s) returning id", (A,)).fetchone()[0]
        conn.execute("insert into chat.threads (id, user_id, user_identifier) values ('t-a', %s, %s)", (uid, A))
        conn.execute("insert into chat.steps (id, thread_id, type, output) values ('s-a', 't-a', 'user_message', 'hi')")
        conn.execute("insert into chat.threads (id, user_identifier) values ('t-b', %s)", (B,))


def _totals(db: Database) -> tuple[object, ...]:
    row = db.fetch_one(
        "select sum(requests) as r, sum(tokens) as t, sum(cost) as c, sum(failures) as f from usage_daily"
    )
    assert row is not None
    return (row["r"], row["t"], row["c"], row["f"])


def test_deleting_a_user_leaves_nothing_of_them_and_consistent_totals(db_url: str, db: Database) -> None:
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        _seed(db, ledger)
        ledger.record(UsageEvent("poison-a", "gpt-4o-mini", "bogus", user_profile_id=A))  # quarantined
        assert ledger.flush_sync()
    db.execute("insert into budgets (user_profile_id, period, limit_usd) values (%s, 'daily', 1)", (A,))
    db.execute("select * from llmtally_reserve(%s, 'r-a', 'gpt-4o', 'openai', 1, 1, 0.001)", (A,))
    for user in (A, B):
        db.execute(
            "insert into refusals (day, user_id, reason, model, refused) values (current_date, %s, 'rpm', 'm', 2)",
            (user,),
        )
    before = _totals(db)
    b_before = db.fetch_one("select * from user_profiles where user_id = %s", (B,))

    report = delete_user(db, A)
    assert (report.calls_anonymised, report.sessions_deleted, report.threads_deleted) == (3, 1, 1)
    assert report.quarantined_deleted == 1
    assert db.fetch_one("select count(*) as n from user_profiles where user_id = %s", (A,))["n"] == 0
    for sql in (
        "select count(*) as n from request_logs where user_profile_id = %(a)s or end_user = %(a)s",
        "select count(*) as n from usage_daily where user_id = %(a)s",
        "select count(*) as n from usage_monthly where user_id = %(a)s",
        "select count(*) as n from usage_monthly_users where user_id = %(a)s",
        "select count(*) as n from budgets where user_profile_id = %(a)s",
        "select count(*) as n from budget_reservations where user_id = %(a)s",
        "select count(*) as n from refusals where user_id = %(a)s",
        "select count(*) as n from sessions where user_id = %(a)s",
        "select count(*) as n from chat.users where identifier = %(a)s",
        "select count(*) as n from chat.threads where user_identifier = %(a)s",
        "select count(*) as n from chat.steps where thread_id = 't-a'",
        "select count(*) as n from quarantine",
        "select count(*) as n from request_logs where session_id = 'sess-a' or messages::text like '%%private 0%%'",
    ):
        assert db.fetch_one(sql, {"a": A})["n"] == 0, sql
    assert _totals(db) == before  # the organisation's usage is still all there, as anonymous
    assert db.fetch_one("select * from user_profiles where user_id = %s", (B,)) == b_before
    assert db.fetch_one("select count(*) as n from chat.threads where id = 't-b'")["n"] == 1
    assert db.fetch_one("select count(*) as n from refusals where user_id = %s", (B,))["n"] == 1
    assert_counters_match_ledger(db)
    assert_counters_match_rollup(db)
    with pytest.raises(UnknownUser):
        delete_user(db, A)


def test_users_delete_of_an_unknown_user_is_one_line(db_url: str) -> None:
    assert_one_line_error(
        llmtally("--database-url", db_url, "users", "delete", "nobody_1", "--yes"), "unknown user: 'nobody_1'"
    )


def test_retention_keeps_lifetime_counters_and_the_rollup(db_url: str, db: Database) -> None:
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        _seed(db, ledger)
    profiles = db.fetch_all("select * from user_profiles order by user_id")
    rollup = db.fetch_all("select * from usage_daily order by user_id, day")

    report = apply_retention(db, content_days=30, rows_days=90, batch=2)
    assert (report.rows_deleted, report.content_cleared) == (3, 2)
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 4
    assert db.fetch_one("select count(*) as n from request_logs where messages is not null")["n"] == 2
    assert db.fetch_all("select * from user_profiles order by user_id") == profiles
    assert db.fetch_all("select * from usage_daily order by user_id, day") == rollup
    assert_counters_match_rollup(db)
    with pytest.raises(AssertionError):  # the ledger now holds only the recent part
        assert_counters_match_ledger(db)

    delete_user(db, A)  # still consistent after deleting a user whose old calls are gone
    assert_counters_match_rollup(db)
    assert db.fetch_one("select count(*) as n from usage_daily where user_id = %s", (A,))["n"] == 0


def test_a_running_ledger_applies_the_retention_setting(db_url: str, db: Database) -> None:
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        _seed(db, ledger)
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 7
    with Ledger(db_url, settings=Settings(flush_interval_ms=20, retention_rows_days=90)):
        deadline = time.monotonic() + 30
        while db.fetch_one("select count(*) as n from request_logs")["n"] != 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert_counters_match_rollup(db)


def test_retention_shorter_than_a_budget_period_is_refused(db: Database) -> None:
    db.execute("insert into budgets (user_profile_id, period, limit_usd) values (null, 'monthly', 5)")
    with pytest.raises(UserInputError, match="at least 32"):
        apply_retention(db, rows_days=7)
    assert apply_retention(db, rows_days=40).rows_deleted == 0
