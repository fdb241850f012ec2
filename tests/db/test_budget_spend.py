"""What a budget's period has spent (public.llmtally_spent, migration 0025): the whole UTC days from
usage_daily, the hours around them from request_logs, equal to the sum over the period's rows.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from zoneinfo import ZoneInfo

from llmtally import budgets as api
from llmtally.db import Database

USER = "google_5151"
OTHER = "github_77"
UTC = dt.UTC


def _user(db: Database, user: str) -> None:
    db.execute("select llmtally_upsert_user(%s)", (user,))


def _calls(db: Database, user: str, moments: list[dt.datetime], seed: int) -> None:
    """One priced call at each moment (random cost and tokens), through the ledger's insert (its triggers)."""
    rng = random.Random(seed)
    rows = [
        (user, f"{user}-{seed}-{i}", f"m{i % 3}", Decimal(rng.randint(1, 10**6)) / 10**8, rng.randint(1, 900), at)
        for i, at in enumerate(moments)
    ]
    with db.transaction() as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into request_logs (user_profile_id, litellm_call_id, model, cost_status, total_cost,"
            " tokens_used, status, created_at) values (%s, %s, %s, 'priced', %s, %s, 'success', %s)",
            rows,
        )


def _summed(db: Database, user: str, starts: dt.datetime, ends: dt.datetime) -> tuple[Decimal, int]:
    row = db.fetch_one(
        "select coalesce(sum(total_cost), 0) as usd, coalesce(sum(tokens_used), 0)::bigint as tokens"
        " from request_logs where user_profile_id = %s and created_at >= %s and created_at < %s",
        (user, starts, ends),
    )
    assert row is not None
    return Decimal(row["usd"]), int(row["tokens"])


def _spent(db: Database, user: str, starts: dt.datetime, ends: dt.datetime) -> tuple[Decimal, int]:
    row = db.fetch_one("select usd, tokens from llmtally_spent(%s, %s, %s)", (user, starts, ends))
    assert row is not None
    return Decimal(row["usd"]), int(row["tokens"])


def test_the_spend_of_any_period_equals_the_sum_of_its_calls(db: Database) -> None:
    _user(db, USER)
    rng = random.Random(7)
    base = dt.datetime(2026, 10, 25, tzinfo=UTC)
    # Calls over 45 days, some exactly on UTC midnights and on the local midnights of the periods below.
    moments = [base + dt.timedelta(minutes=rng.randint(0, 45 * 24 * 60)) for _ in range(600)]
    moments += [base + dt.timedelta(days=d) for d in range(45)]
    moments += [dt.datetime(2026, 11, d, tzinfo=ZoneInfo("Asia/Kathmandu")) for d in range(1, 30)]
    _calls(db, USER, moments, seed=1)
    periods = [
        (base + dt.timedelta(days=2), base + dt.timedelta(days=9)),  # whole UTC days only
        (base + dt.timedelta(days=2, hours=5), base + dt.timedelta(days=2, hours=9)),  # inside one day
        (base + dt.timedelta(days=3, hours=19), base + dt.timedelta(days=4, hours=2)),  # across one midnight
        (base + dt.timedelta(days=1, minutes=1), base + dt.timedelta(days=40, minutes=-1)),
        (base + dt.timedelta(days=5), base + dt.timedelta(days=5)),  # empty
    ]
    for zone in ("UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham"):
        for period in ("daily", "weekly", "monthly"):
            for at in (base + dt.timedelta(days=d, hours=h) for d in (3, 11, 38) for h in (1, 13)):
                bounds = db.fetch_one("select starts, ends from llmtally_period_bounds(%s, %s, %s)", (period, at, zone))
                assert bounds is not None
                periods.append((bounds["starts"], bounds["ends"]))
    for _ in range(60):
        start = base + dt.timedelta(seconds=rng.randint(0, 45 * 86400))
        periods.append((start, start + dt.timedelta(seconds=rng.randint(1, 20 * 86400))))
    for starts, ends in periods:
        assert _spent(db, USER, starts, ends) == _summed(db, USER, starts, ends), (starts, ends)
    assert _summed(db, USER, base, base + dt.timedelta(days=46))[1] > 0


def test_budgets_reservations_and_alerts_see_the_spend_of_the_period(db: Database) -> None:
    _user(db, USER)
    api.set_budget(db, None, "monthly", limit_usd=Decimal("1"), hard=True, thresholds=api.parse_thresholds("50%"))
    now = dt.datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    before = month_start - dt.timedelta(seconds=1)  # last month: not counted
    db.execute(
        "insert into request_logs (user_profile_id, litellm_call_id, model, cost_status, total_cost, status,"
        " created_at) values (%s, 'old', 'm', 'priced', 5, 'success', %s), (%s, 'new', 'm', 'priced', 0.6,"
        " 'success', %s)",
        (USER, before, USER, month_start),
    )
    (status,) = api.budget_status(db, USER)
    assert status.spent_usd == Decimal("0.6")
    assert [(a.threshold, a.spent_usd) for a in api.alerts(db)] == [(Decimal("0.5"), Decimal("0.6"))]
    est = api.Estimate("m", "p", 0, 0, Decimal("0.5"), None)
    try:
        api.reserve(db, USER, "too-much", est)
    except api.BudgetExceeded as exc:
        assert exc.spent == Decimal("0.6")
    else:
        raise AssertionError("a reservation past the month's limit was admitted")
    api.reserve(db, USER, "fits", api.Estimate("m", "p", 0, 0, Decimal("0.4"), None))


def test_a_user_reads_only_their_own_spend(db: Database) -> None:
    _user(db, USER)
    _user(db, OTHER)
    day = dt.datetime(2026, 11, 3, tzinfo=UTC)
    _calls(db, USER, [day + dt.timedelta(hours=h) for h in range(0, 48, 5)], seed=2)
    whole = (day - dt.timedelta(hours=3), day + dt.timedelta(days=2, hours=3))
    expected = _summed(db, USER, *whole)
    assert expected[1] > 0
    with db.as_user(USER) as conn:
        assert conn.execute("select usd, tokens from llmtally_spent(%s, %s, %s)", (USER, *whole)).fetchone() == (
            expected
        )
    with db.as_user(OTHER) as conn:  # row-level security: another user's spend reads as nothing
        assert conn.execute("select usd, tokens from llmtally_spent(%s, %s, %s)", (USER, *whole)).fetchone() == (
            Decimal(0),
            0,
        )
