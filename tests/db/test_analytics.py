"""The analytics API answers from the rollup or an index, with exact numbers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal

import pytest

from llmtally import Ledger, Settings, UnknownUser, UsageEvent, UserInputError
from llmtally import analytics as api
from llmtally.analytics import Analytics
from llmtally.analytics.service import month_split
from llmtally.db import Database
from llmtally.db.queries import query
from tests.support.invariants import assert_counters_match_ledger
from tests.support.plans import table_scans

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
THIS_MONTH = NOW.date().replace(day=1)
LAST_MONTH = (THIS_MONTH - dt.timedelta(days=1)).replace(day=1)


def event(
    call: str,
    user: str | None,
    *,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    status: str = "success",
    prompt: int = 100,
    completion: int = 50,
    cost: float | None = 0.001,
    at: dt.datetime = NOW,
) -> UsageEvent:
    return UsageEvent(
        litellm_call_id=call,
        model=model,
        provider=provider,
        status=status,  # type: ignore[arg-type]
        user_profile_id=user,
        prompt_tokens=prompt,
        completion_tokens=completion,
        reported_cost=cost,
        created_at=at,
    )


@pytest.fixture
def seeded(db_url: str) -> Iterator[str]:
    """Ada: 3 calls this month (2 models, 1 failure) + 1 last month. Bob: 1 call. New: a profile, no calls."""
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.upsert_user_sync("google_ada", email="ada@example.com", full_name="Ada", provider="google")
        ledger.upsert_user_sync("github_new", email="new@example.com")
        for e in [
            event("a1", "google_ada", at=NOW - dt.timedelta(seconds=3)),
            event(
                "a2",
                "google_ada",
                model="claude-haiku-4-5",
                provider="anthropic",
                prompt=10,
                completion=5,
                cost=0.002,
                at=NOW - dt.timedelta(seconds=2),
            ),
            event(
                "a3", "google_ada", status="failure", prompt=0, completion=0, cost=0.0, at=NOW - dt.timedelta(seconds=1)
            ),
            event("a0", "google_ada", at=dt.datetime.combine(LAST_MONTH, dt.time(12), dt.UTC)),
            event("b1", "github_bob", prompt=1, completion=1, cost=0.5),
            event("x1", None),
        ]:
            ledger.record(e)
        assert ledger.flush_sync()
    yield db_url


def test_user_analytics_totals(seeded: str) -> None:
    a = api.get_user_analytics("google_ada", database_url=seeded)
    assert (a.requests.total, a.requests.success, a.requests.failure, a.requests.cancelled) == (4, 3, 1, 0)
    assert (a.tokens.prompt, a.tokens.completion, a.tokens.total) == (210, 105, 315)
    assert a.cost == Decimal("0.004")
    assert a.models_used == ["claude-haiku-4-5", "gpt-4o-mini"]
    assert a.error_rate == Decimal("0.25")
    assert a.first_request_at == dt.datetime.combine(LAST_MONTH, dt.time(12), dt.UTC)
    assert a.last_request_at == NOW - dt.timedelta(seconds=1)
    as_json = json.loads(json.dumps(a.model_dump(mode="json")))
    assert as_json["cost"] == "0.004" and as_json["requests"]["total"] == 4


def test_new_user_has_zeros_and_unknown_user_is_an_error(seeded: str) -> None:
    new = api.get_user_analytics("github_new", database_url=seeded)
    assert (new.requests.total, new.tokens.total, new.cost, new.models_used) == (0, 0, 0, [])
    assert api.get_user_request_history("github_new", database_url=seeded).items == []
    with pytest.raises(UnknownUser, match="nobody"):
        api.get_user_analytics("nobody", database_url=seeded)
    with pytest.raises(UnknownUser):
        api.get_user_monthly_usage("nobody", database_url=seeded)


def test_history_is_newest_first_and_paged_by_cursor(seeded: str) -> None:
    with Analytics.connect(seeded) as analytics:
        first = analytics.user_request_history("google_ada", limit=2)
        assert [r.litellm_call_id for r in first.items] == ["a3", "a2"]
        assert first.next_before is not None
        second = analytics.user_request_history("google_ada", limit=2, before=first.next_before)
        assert [r.litellm_call_id for r in second.items] == ["a1", "a0"]
        assert second.next_before is None
        assert second.items[1].total_cost == Decimal("0.001")
        with pytest.raises(UserInputError, match="cursor"):
            analytics.user_request_history("google_ada", before="garbage")


def test_token_breakdown_by_model_and_provider_with_period(seeded: str) -> None:
    b = api.get_user_token_breakdown("google_ada", since=THIS_MONTH, database_url=seeded)
    by_model = {m.model: (m.requests, m.total_tokens, m.cost, m.failures) for m in b.by_model}
    assert by_model == {"gpt-4o-mini": (2, 150, Decimal("0.001"), 1), "claude-haiku-4-5": (1, 15, Decimal("0.002"), 0)}
    assert {p.provider: p.requests for p in b.by_provider} == {"openai": 2, "anthropic": 1}
    everything = api.get_user_token_breakdown("google_ada", database_url=seeded)
    assert sum(m.requests for m in everything.by_model) == 4
    with pytest.raises(UserInputError, match="since"):
        api.get_user_token_breakdown("google_ada", since="yesterday", database_url=seeded)


def test_monthly_usage_with_breakdowns(seeded: str) -> None:
    months = api.get_user_monthly_usage("google_ada", months=3, database_url=seeded)
    assert [m.month for m in months] == [THIS_MONTH, LAST_MONTH]
    this, last = months
    assert (this.requests, this.failures, this.total_tokens, this.total_cost) == (3, 1, 165, Decimal("0.003"))
    assert this.model_breakdown["claude-haiku-4-5"].tokens == 15
    assert this.provider_breakdown["openai"].requests == 2
    assert (last.requests, last.total_cost) == (1, Decimal("0.001"))


async def test_async_twins_give_the_same_answers(seeded: str) -> None:
    a = await api.get_user_analytics_async("google_ada", database_url=seeded)
    assert a == api.get_user_analytics("google_ada", database_url=seeded)
    h = await api.get_user_request_history_async("google_ada", 1, database_url=seeded)
    assert [r.litellm_call_id for r in h.items] == ["a3"]
    assert (await api.get_user_token_breakdown_async("github_bob", database_url=seeded)).by_model[0].requests == 1
    assert len(await api.get_user_monthly_usage_async("google_ada", database_url=seeded)) == 2


def test_admin_views(seeded: str) -> None:
    with Analytics.connect(seeded) as analytics:
        top = analytics.top_users(THIS_MONTH)
        assert [(u.user_id, u.cost) for u in top] == [("github_bob", Decimal("0.5")), ("google_ada", Decimal("0.003"))]
        models = {(m.model, m.provider): m.requests for m in analytics.totals_by_model(THIS_MONTH)}
        assert models == {("gpt-4o-mini", "openai"): 4, ("claude-haiku-4-5", "anthropic"): 1}
        days = analytics.totals_by_day(LAST_MONTH)
        assert sum(d.requests for d in days) == 6 and days[-1].active_users >= 2
        rates = {m.model: m.error_rate for m in analytics.error_rate_by_model(THIS_MONTH)}
        assert rates == {"gpt-4o-mini": Decimal("0.25"), "claude-haiku-4-5": Decimal(0)}
        assert {u.user_id for u in analytics.users()} == {"google_ada", "github_bob", "github_new"}
        with pytest.raises(UserInputError, match="after"):
            analytics.top_users(THIS_MONTH, LAST_MONTH)


PER_USER_QUERIES = {
    "user_analytics": {"user_id": "google_ada"},
    "user_history": {"user_id": "google_ada", "before_at": None, "before_id": None, "limit": 51},
    "user_breakdown_by_model": {"user_id": "google_ada", **month_split(None, None, NOW.date())},
    "user_monthly": {"user_id": "google_ada", "first_month": LAST_MONTH},
}


@pytest.mark.parametrize("name", sorted(PER_USER_QUERIES))
def test_per_user_queries_use_indexes_not_sequential_scans(seeded: str, name: str) -> None:
    with Database(seeded) as db, db.transaction() as conn:
        conn.execute("set local enable_seqscan = off")  # only a missing index can force a seq scan now
        sql = query(name)
        plan = conn.execute("explain (format json) " + sql, PER_USER_QUERIES[name]).fetchone()[0]
    scans = table_scans(plan)
    assert scans, "the plan reads no table"
    assert not [s for s in scans if s[0] == "Seq Scan"], scans


def test_analytics_for_a_user_read_under_row_level_security(seeded: str) -> None:
    with Database(seeded) as db:
        mine = Analytics.for_user(db, "google_ada")
        assert mine.user_analytics("google_ada") == Analytics(db).user_analytics("google_ada")
        assert [r.litellm_call_id for r in mine.user_request_history("google_ada").items] == ["a3", "a2", "a1", "a0"]
        with pytest.raises(UnknownUser):
            mine.user_analytics("github_bob")  # exists, but RLS hides it from Ada
        with pytest.raises(UnknownUser):
            mine.user_request_history("github_bob")
        assert [u.user_id for u in mine.top_users(THIS_MONTH)] == ["google_ada"]
        assert {(m.model, m.requests) for m in mine.totals_by_model(THIS_MONTH)} == {
            ("gpt-4o-mini", 2),
            ("claude-haiku-4-5", 1),
        }
        assert sum(d.requests for d in mine.daily_by_model(LAST_MONTH)) == 4
        assert {m.model: m.failures for m in mine.error_rate_by_model(THIS_MONTH)}["gpt-4o-mini"] == 1


def test_costs_inside_breakdowns_are_exact_decimals(seeded: str) -> None:
    [this, _] = api.get_user_monthly_usage("google_ada", database_url=seeded)
    assert this.model_breakdown["claude-haiku-4-5"].cost == Decimal("0.002")
    assert this.model_breakdown["gpt-4o-mini"].cost == Decimal("0.001")


# -- periods across the monthly and daily rollups ---------------------------------------------------------------
SPREAD_USERS = ["google_u1", "google_u2", "github_u3"]


@pytest.fixture
def spread(db_url: str) -> Iterator[str]:
    """Calls on about 200 days over 14 months (one a day, rotating users and models)."""
    today = NOW.date()
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for n in range(200):
            day = today - dt.timedelta(days=n * 2 + (n % 3))
            ledger.record(
                event(
                    f"s{n}",
                    SPREAD_USERS[n % 3],
                    model=["gpt-4o-mini", "claude-haiku-4-5"][n % 2],
                    provider=["openai", "anthropic"][n % 2],
                    prompt=n + 1,
                    completion=2 * n,
                    cost=(n + 1) / 1000,
                    status="failure" if n % 7 == 0 else "success",
                    at=dt.datetime.combine(day, dt.time(n % 24, 30), dt.UTC),
                )
            )
        assert ledger.flush_sync()
    yield db_url


def _periods(today: dt.date) -> list[tuple[dt.date | None, dt.date | None]]:
    month = today.replace(day=1)
    a_year_ago = (month - dt.timedelta(days=360)).replace(day=1)
    return [
        (month, today + dt.timedelta(days=1)),  # this month so far (the dashboard's default)
        (month, None),
        (None, None),  # lifetime
        (a_year_ago, month),  # twelve whole months
        ((month - dt.timedelta(days=1)).replace(day=1), month),  # last month, whole
        (a_year_ago + dt.timedelta(days=9), month - dt.timedelta(days=40)),  # ragged at both ends
        (today - dt.timedelta(days=45), today - dt.timedelta(days=44)),  # one day
        (today - dt.timedelta(days=100), today + dt.timedelta(days=400)),  # ends long after today
        (None, a_year_ago + dt.timedelta(days=15)),
    ]


def test_periods_across_months_give_the_ledgers_exact_sums(spread: str) -> None:
    """Whole months come from usage_monthly and the days around them from usage_daily: for any period,
    the answer equals the sum of the request_logs rows in it."""
    today = NOW.date()
    with Database(spread) as db:
        analytics = Analytics(db)
        for since, until in _periods(today):
            where = "(%(since)s::date is null or created_at >= %(since)s::date)"
            where += " and (%(until)s::date is null or created_at < %(until)s::date)"
            expected = {
                r["user_profile_id"]: (r["n"], r["cost"])
                for r in db.fetch_all(
                    "select user_profile_id, count(*) as n, sum(total_cost) as cost from request_logs"
                    f" where {where} group by 1",
                    {"since": since, "until": until},
                )
            }
            if since is not None:
                top = analytics.top_users(since, until, limit=10)
                assert {u.user_id: (u.requests, u.cost) for u in top} == expected, (since, until)
            for user in SPREAD_USERS:
                breakdown = analytics.user_token_breakdown(user, since, until)
                got = (
                    sum(m.requests for m in breakdown.by_model),
                    sum((m.cost for m in breakdown.by_model), Decimal(0)),
                )
                assert got == expected.get(user, (0, Decimal(0))), (user, since, until)
        by_day = analytics.daily_by_model(today - dt.timedelta(days=89), today + dt.timedelta(days=1))
        direct = db.fetch_all(
            "select (created_at at time zone 'UTC')::date as day, model, count(*) as n, sum(total_cost) as cost"
            " from request_logs where created_at >= %s group by 1, 2 order by 1, 2",
            (today - dt.timedelta(days=89),),
        )
        assert [(d.day, d.model, d.requests, d.cost) for d in by_day] == [
            (r["day"], r["model"], r["n"], r["cost"]) for r in direct
        ]
        assert_counters_match_ledger(db)


def test_repricing_moves_every_rollup(spread: str) -> None:
    with Database(spread) as db:
        db.execute(
            "update request_logs set total_cost = total_cost * 2, cost_status = 'custom' where model = 'gpt-4o-mini'"
        )
        assert_counters_match_ledger(db)
        month = db.fetch_one("select sum(cost) as c from usage_monthly where model = 'gpt-4o-mini'")
        ledger = db.fetch_one("select sum(total_cost) as c from request_logs where model = 'gpt-4o-mini'")
        assert month["c"] == ledger["c"] > 0


def test_deleting_a_profile_moves_its_calls_to_the_anonymous_rows_of_every_rollup(spread: str) -> None:
    with Database(spread) as db:
        before = db.fetch_one("select count(*) as n, sum(total_cost) as c from request_logs")
        db.execute("delete from user_profiles where user_id = 'google_u1'")
        assert db.fetch_all("select 1 from usage_monthly where user_id = 'google_u1'") == []
        anonymous = db.fetch_one("select sum(requests) as n from usage_monthly where user_id is null")
        assert (
            anonymous["n"] == db.fetch_one("select count(*) as n from request_logs where user_profile_id is null")["n"]
        )
        totals = db.fetch_one("select sum(requests) as n, sum(cost) as c from usage_daily_totals")
        assert (totals["n"], totals["c"]) == (before["n"], before["c"])
        assert_counters_match_ledger(db)
