"""Budgets and rate limits hold exactly under concurrency; reservations settle with the ledger row."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.server
import json
import signal
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import litellm
import pytest

from llmtally import BudgetExceeded, Budgets, Ledger, RateLimited, Settings, UserInputError
from llmtally import budgets as api
from llmtally.db import Database
from llmtally.errors import UnknownUser
from tests.support.cluster import Cluster
from tests.support.forked import run_forked
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

WORKER = Path(__file__).parents[1] / "support" / "budget_worker.py"
ROOT = Path(__file__).resolve().parents[2]
USER = "google_4242"
MESSAGES = [{"role": "user", "content": "hello hello hello"}]  # 10 tokens; the mock answers 10 + 20
CALL_USD = Decimal("0.0000135")  # gpt-4o-mini: 10 x 0.15/M + 20 x 0.6/M
CALL_TOKENS = 30


def _user(db: Database, user: str = USER) -> None:
    db.execute("select llmtally_upsert_user(%s)", (user,))


def _run_workers(db_urls: list[str], processes: int, calls: int) -> dict[str, dict[str, int]]:
    """``processes`` app processes per database, all at once, each making ``calls`` calls; totals by database."""
    jobs = [[url, USER, str(w), str(calls)] for url in db_urls for w in range(processes)]
    total = {url: {"ok": 0, "budget": 0, "rate": 0, "other": 0} for url in db_urls}
    for job, p in zip(jobs, run_forked(WORKER, jobs), strict=True):
        assert p.returncode == 0, p.stderr[-3000:]
        for key, value in json.loads(p.stdout.strip().splitlines()[-1]).items():
            total[job[0]][key] += value
    return total


def _ledger_totals(db: Database) -> dict[str, Any]:
    row = db.fetch_one(
        "select count(*) as n, coalesce(sum(total_cost), 0) as usd, coalesce(sum(tokens_used), 0) as tokens"
        " from request_logs where user_profile_id = %s",
        (USER,),
    )
    assert row is not None
    return row


LIMITS = ("usd", "tokens", "rpm")


Runs = dict[str, tuple[str, dict[str, int]]]


@pytest.fixture(scope="session")
def runs_by_server() -> dict[str, Runs]:
    return {}


@pytest.fixture
def concurrent_runs(cluster: Cluster, template: str, runs_by_server: dict[str, Runs]) -> Runs:
    """The three limits in one pass per server: a database per limit, each with 4 app processes making 125
    calls, all 12 processes at once (forked from one interpreter: LiteLLM is imported once, not 12 times).
    By limit: the database's URL and the calls' outcomes summed over its processes. Kept for the session
    (pytest interleaves the servers' tests, so a module fixture would run the pass again); the databases
    are dropped with the cluster's."""
    if cluster.admin_url not in runs_by_server:
        urls = {limit: cluster.url(cluster.create_database(template)) for limit in LIMITS}
        for limit, url in urls.items():
            with Database(url) as db:
                _user(db)
                if limit == "usd":
                    api.set_budget(db, USER, "lifetime", limit_usd=CALL_USD * 100)
                elif limit == "tokens":
                    api.set_budget(db, None, "monthly", limit_tokens=CALL_TOKENS * 100, timezone="Asia/Kolkata")
                else:
                    api.set_rate_limit(db, None, rpm=100, tpm=None)
        outcomes = _run_workers(list(urls.values()), processes=4, calls=125)
        runs_by_server[cluster.admin_url] = {limit: (url, outcomes[url]) for limit, url in urls.items()}
    return runs_by_server[cluster.admin_url]


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.slow
def test_500_concurrent_calls_over_4_processes_admit_exactly_100(concurrent_runs: Runs, limit: str) -> None:
    url, outcome = concurrent_runs[limit]
    with Database(url) as db:
        _admitted_exactly_100(db, limit, outcome)


def _admitted_exactly_100(db: Database, limit: str, outcome: dict[str, int]) -> None:
    refused = "rate" if limit == "rpm" else "budget"
    assert outcome == {"ok": 100, "budget": 0, "rate": 0, "other": 0} | {refused: 400}
    totals = _ledger_totals(db)
    assert totals["n"] == 100
    assert totals["usd"] == CALL_USD * 100
    assert totals["tokens"] == CALL_TOKENS * 100
    assert db.fetch_one("select count(*) as n from budget_reservations")["n"] == 0  # every call settled
    assert_counters_match_ledger(db)
    # every refusal counted once, by the four processes together, under the reason given to the caller
    counted = db.fetch_all("select user_id, reason, sum(refused)::int as n from refusals group by 1, 2")
    assert counted == [{"user_id": USER, "reason": "rpm" if limit == "rpm" else "budget", "n": 400}]
    if limit != "rpm":
        (status,) = api.budget_status(db, USER)
        assert (status.spent_usd, status.spent_tokens, status.reserved_usd) == (totals["usd"], totals["tokens"], 0)
        assert status.remaining_usd == 0 if limit == "usd" else status.remaining_tokens == 0
        # 50 %, 80 % and 100 % each raised once, however many writers crossed them at once
        assert sorted(a.threshold for a in api.alerts(db, USER)) == [Decimal("0.5"), Decimal("0.8"), Decimal("1.0")]


def _reserve_at(db: Database, at: dt.datetime, call_id: str, usd: str = "1") -> dict[str, Any]:
    row = db.fetch_all(
        "select * from llmtally_reserve(%s, %s, 'm', 'p', 0, 0, %s, 600, %s)", (USER, call_id, Decimal(usd), at)
    )[0]
    return row


def _spend_at(db: Database, at: dt.datetime, call_id: str, usd: str) -> None:
    db.execute(
        "insert into request_logs (user_profile_id, litellm_call_id, model, cost_status, total_cost, status,"
        " created_at) values (%s, %s, 'm', 'priced', %s, 'success', %s)",
        (USER, call_id, Decimal(usd), at),
    )


@pytest.mark.parametrize(
    ("period", "tz", "last_moment", "next_period"),
    [
        ("daily", "America/New_York", dt.datetime(2026, 3, 7, 23, 59, 59), dt.datetime(2026, 3, 8, 0, 0)),
        ("monthly", "Asia/Kolkata", dt.datetime(2026, 1, 31, 23, 59, 59), dt.datetime(2026, 2, 1, 0, 0)),
        ("weekly", "America/New_York", dt.datetime(2026, 11, 1, 23, 59, 59), dt.datetime(2026, 11, 2, 0, 0)),
    ],
)
def test_periods_reset_at_local_boundaries(
    db: Database, period: str, tz: str, last_moment: dt.datetime, next_period: dt.datetime
) -> None:
    _user(db)
    zone = ZoneInfo(tz)
    end, start = last_moment.replace(tzinfo=zone), next_period.replace(tzinfo=zone)
    api.set_budget(db, USER, period, limit_usd=Decimal("1"), timezone=tz)
    _spend_at(db, end - dt.timedelta(hours=1), "spent-1", "0.9")
    refused = _reserve_at(db, end, "late", "0.2")
    assert (refused["allowed"], refused["reason"], refused["spent"], refused["limit_amount"]) == (
        False,
        "budget",
        Decimal("0.9"),
        Decimal("1"),
    )
    assert refused["resets_at"] == start  # local midnight, given as an absolute instant
    assert refused["resets_at"].astimezone(dt.UTC) != start.replace(tzinfo=dt.UTC)  # not UTC midnight
    assert _reserve_at(db, start, "early", "0.2")["allowed"]
    (status,) = api.budget_status(db, USER, at=start + dt.timedelta(seconds=1))
    assert (status.period_start, status.spent_usd, status.reserved_usd) == (start, 0, Decimal("0.2"))


def test_a_call_recorded_before_the_boundary_counts_in_its_own_period(db: Database) -> None:
    _user(db)
    zone = ZoneInfo("Asia/Kolkata")
    api.set_budget(db, USER, "daily", limit_usd=Decimal("1"), timezone="Asia/Kolkata")
    midnight = dt.datetime(2026, 5, 2, tzinfo=zone)
    _spend_at(db, midnight - dt.timedelta(seconds=1), "before", "0.7")
    _spend_at(db, midnight, "after", "0.4")
    assert not _reserve_at(db, midnight, "x", "0.7")["allowed"]  # 0.4 + 0.7 > 1
    assert _reserve_at(db, midnight, "y", "0.6")["allowed"]  # 0.4 + 0.6 = 1 fits exactly
    assert not _reserve_at(db, midnight - dt.timedelta(minutes=1), "z", "0.31")["allowed"]


@pytest.mark.slow
def test_a_killed_process_releases_its_reservation_after_expiry(db: Database, db_url: str) -> None:
    _user(db)
    api.set_budget(db, USER, "lifetime", limit_usd=CALL_USD)  # room for exactly one call
    script = (
        "import os, signal, sys\n"
        "from llmtally import budgets as api\n"
        "from llmtally.db import Database\n"
        "db = Database(sys.argv[1]).open()\n"
        f"est = api.estimate('gpt-4o-mini', {MESSAGES!r}, 20)\n"
        f"api.reserve(db, {USER!r}, 'doomed-call', est, ttl_s=2)\n"
        "print('reserved', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, db_url], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert proc.stdout.strip() == "reserved"
    assert db.fetch_one("select usd from budget_reservations where litellm_call_id = 'doomed-call'") == {
        "usd": CALL_USD
    }
    est = api.estimate("gpt-4o-mini", MESSAGES, 20)
    with pytest.raises(BudgetExceeded) as info:
        api.reserve(db, USER, "second", est)
    assert (info.value.spent, info.value.reserved, info.value.resets_at) == (0, CALL_USD, None)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)  # the reservation's clock, 3 s on: no sleep
    api.reserve(db, USER, "second", est, at=later)  # the dead process's reservation expired and was released
    assert [r["litellm_call_id"] for r in db.fetch_all("select litellm_call_id from budget_reservations")] == ["second"]


async def _with_budgets(db_url: str, **kwargs: Any) -> tuple[Ledger, Budgets]:
    ledger = await Ledger(db_url, settings=Settings(flush_interval_ms=20)).start()
    return ledger, Budgets(ledger, **kwargs)


def test_streamed_and_cancelled_calls_settle_to_their_real_usage(db: Database, db_url: str) -> None:
    _user(db)
    api.set_budget(db, USER, "daily", limit_usd=Decimal("1"), limit_tokens=100_000)

    async def scenario() -> tuple[str, str, str]:
        ledger, budgets = await _with_budgets(db_url)
        try:
            # streamed to the end: LiteLLM's success event settles it
            stream = await budgets.acompletion(
                user_id=USER,
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=500,
                stream=True,
                stream_options={"include_usage": True},
                mock_response="one two three four five six seven",
            )
            async with stream:
                text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert text.split() == ["one", "two", "three", "four", "five", "six", "seven"]
            # stopped after the first chunk: recorded as cancelled with what was streamed
            stopped = await budgets.acompletion(
                user_id=USER,
                model="gpt-4o-mini",
                messages=MESSAGES,
                max_tokens=500,
                stream=True,
                mock_response="alpha beta gamma delta epsilon zeta eta theta",
            )
            async with stopped:
                async for _chunk in stopped:
                    break
            # a task cancelled while waiting for a non-streamed answer
            slow = asyncio.create_task(
                budgets.acompletion(
                    user_id=USER,
                    model="gpt-4o-mini",
                    messages=MESSAGES,
                    max_tokens=500,
                    mock_response="x",
                    mock_delay=5,
                )
            )
            await asyncio.sleep(0.5)
            reserved = api.budget_status(db, USER)[0].reserved_tokens
            assert reserved >= 10 + 500  # the slow call holds its worst case
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            assert await ledger.flush(timeout=30)
            return stream.litellm_call_id, stopped.litellm_call_id, stopped.text
        finally:
            await ledger.close()

    streamed_id, stopped_id, partial = asyncio.run(scenario())
    rows = db.fetch_all(
        "select litellm_call_id, status, prompt_tokens, completion_tokens, tokens_used, total_cost, stream"
        " from request_logs order by created_at, id"
    )
    assert [(r["status"], r["stream"]) for r in rows] == [("success", True), ("cancelled", True), ("cancelled", False)]
    assert rows[0]["litellm_call_id"] == streamed_id and rows[1]["litellm_call_id"] == stopped_id
    assert rows[0]["completion_tokens"] > 0 and rows[0]["total_cost"] > 0
    assert partial and rows[1]["completion_tokens"] == litellm.token_counter(model="gpt-4o-mini", text=partial)
    assert rows[1]["completion_tokens"] < 500 and rows[2]["completion_tokens"] == 0 and rows[2]["prompt_tokens"] > 0
    assert db.fetch_one("select count(*) as n from budget_reservations")["n"] == 0
    (status,) = api.budget_status(db, USER)
    assert status.spent_tokens == sum(r["tokens_used"] for r in rows)
    assert status.spent_usd == sum(r["total_cost"] for r in rows)
    assert (status.reserved_usd, status.reserved_tokens) == (0, 0)
    assert_counters_match_ledger(db)


def test_a_refused_call_raises_one_line_errors_and_is_not_made(db: Database, db_url: str) -> None:
    _user(db)
    api.set_budget(db, USER, "daily", limit_usd=Decimal("0.00001"), timezone="Europe/Paris")

    async def scenario() -> None:
        ledger, budgets = await _with_budgets(db_url)
        try:
            with pytest.raises(BudgetExceeded) as info:
                await budgets.acompletion(user_id=USER, model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
            err = info.value
            assert (err.limit, err.spent, err.reserved, err.requested) == (Decimal("0.00001"), 0, 0, CALL_USD)
            assert err.resets_at == api.budget_status(db, USER)[0].period_end
            assert "\n" not in str(err) and "daily budget exceeded" in str(err)
            api.delete_budget(db, USER, "daily")
            api.set_rate_limit(db, USER, rpm=None, tpm=25)
            with pytest.raises(RateLimited) as rate:
                await budgets.acompletion(user_id=USER, model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
            assert rate.value.retry_after is None and "alone exceeds" in str(rate.value)
            api.set_rate_limit(db, USER, rpm=1, tpm=None)
            await budgets.acompletion(
                user_id=USER, model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, mock_response="ok"
            )
            with pytest.raises(RateLimited) as rate:
                await budgets.acompletion(user_id=USER, model="gpt-4o-mini", messages=MESSAGES, max_tokens=20)
            assert rate.value.retry_after is not None and 55 < rate.value.retry_after <= 60
            assert "retry in" in str(rate.value)
            await ledger.flush()
        finally:
            await ledger.close()

    asyncio.run(scenario())
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 1  # refused calls never ran


def test_unpriced_models_are_refused_by_usd_budgets_but_pass_token_budgets(db: Database) -> None:
    _user(db)
    est = api.estimate("acme-internal-llm", MESSAGES, 20)
    assert est.usd is None
    api.set_budget(db, USER, "monthly", limit_tokens=1000)
    api.reserve(db, USER, "c1", est)
    api.set_budget(db, None, "daily", limit_usd=Decimal("5"))
    with pytest.raises(BudgetExceeded, match="no price is known for acme-internal-llm"):
        api.reserve(db, USER, "c2", est)
    db.execute("insert into model_prices values ('acme-internal-llm', 0.001, 0.002)")  # a custom price applies
    api.reserve(db, USER, "c3", est)
    assert db.fetch_one("select usd from budget_reservations where litellm_call_id = 'c3'") == {
        "usd": Decimal("0.001") * est.prompt_tokens + Decimal("0.002") * 20
    }


def test_soft_budgets_warn_once_per_threshold_and_users_see_their_own(db: Database, db_url: str) -> None:
    _user(db)
    _user(db, "github_9")
    api.set_budget(db, None, "monthly", limit_usd=Decimal("1"), hard=False, thresholds=api.parse_thresholds("50%,80%"))
    now = dt.datetime.now(dt.UTC)
    _spend_at(db, now, "a", "0.3")
    assert api.alerts(db) == []
    _spend_at(db, now, "b", "0.3")
    _spend_at(db, now, "c", "0.3")
    assert _reserve_at(db, now, "over-soft", "5")["allowed"]  # soft: warns, never blocks
    _spend_at(db, now, "d", "0.3")
    found = api.alerts(db)
    assert [(a.user_id, a.threshold, a.spent_usd) for a in found] == [
        (USER, Decimal("0.5"), Decimal("0.6")),
        (USER, Decimal("0.8"), Decimal("0.9")),
    ]
    with db.as_user(USER) as conn:
        assert conn.execute("select count(*) from budget_alerts").fetchone() == (2,)
        own = conn.execute("select user_id, spent_usd, remaining_usd from user_budget_status").fetchall()
        assert own == [(USER, Decimal("1.2"), Decimal(0))]
    with db.as_user("github_9") as conn:
        assert conn.execute("select count(*) from budget_alerts").fetchone() == (0,)
        assert conn.execute("select user_id, spent_usd from user_budget_status").fetchall() == [
            ("github_9", Decimal(0))
        ]
    delivered: list[api.Alert] = []
    assert api.deliver_alerts(db, delivered.append) == 2
    assert api.deliver_alerts(db, delivered.append) == 0  # each alert is delivered once
    assert [a.threshold for a in delivered] == [Decimal("0.5"), Decimal("0.8")]


def test_users_read_but_never_write_budgets_or_reserve(db: Database) -> None:
    _user(db)
    api.set_budget(db, USER, "daily", limit_usd=Decimal("1"))
    api.set_budget(db, None, "weekly", limit_tokens=5)
    api.set_budget(db, "google_4242", "monthly", limit_tokens=5)
    _user(db, "github_9")
    api.set_budget(db, "github_9", "daily", limit_usd=Decimal("9"))
    with db.as_user(USER) as conn:
        assert sorted(r[0] for r in conn.execute("select period from budgets")) == ["daily", "monthly", "weekly"]
    for sql in (
        "update budgets set limit_usd = 1000",
        "insert into budgets (user_profile_id, period, limit_usd) values ('google_4242', 'lifetime', 1)",
        "delete from budget_reservations",
        "insert into rate_limits (user_profile_id, rpm) values ('google_4242', 1000)",
        "select * from llmtally_reserve('google_4242', 'x', 'm', 'p', 0, 0, 0)",
        "select llmtally_release('x')",
        "select * from rate_limit_log",
    ):
        with pytest.raises(Exception, match="permission denied"), db.as_user(USER) as conn:
            conn.execute(sql)


def test_admin_functions_reject_bad_input(db: Database) -> None:
    _user(db)
    with pytest.raises(UnknownUser):
        api.set_budget(db, "nobody", "daily", limit_usd=Decimal(1))
    with pytest.raises(UserInputError, match="period must be one of"):
        api.set_budget(db, USER, "hourly", limit_usd=Decimal(1))
    with pytest.raises(UserInputError, match="unknown timezone"):
        api.set_budget(db, USER, "daily", limit_usd=Decimal(1), timezone="Mars/Olympus")
    with pytest.raises(UserInputError, match="zero or more"):
        api.set_budget(db, USER, "daily", limit_usd=Decimal(-1))
    with pytest.raises(UserInputError, match="USD limit, a token limit"):
        api.set_budget(db, USER, "daily")
    budget = api.set_budget(db, USER, "daily", limit_usd=Decimal("2.5"), timezone="Asia/Kolkata")
    again = api.set_budget(db, USER, "daily", limit_tokens=10)  # replaces, same row
    assert (again.id, again.limit_usd, again.limit_tokens, again.timezone) == (budget.id, None, 10, "UTC")
    assert api.delete_budget(db, USER, "daily") and not api.delete_budget(db, USER, "daily")


def test_the_webhook_receives_each_alert_once(db: Database, db_url: str) -> None:
    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _user(db)
        api.set_budget(db, USER, "weekly", limit_tokens=100, thresholds=[Decimal(1)])
        db.execute(
            "insert into request_logs (user_profile_id, litellm_call_id, model, cost_status, total_cost, status,"
            " tokens_used) values (%s, 'big', 'm', 'priced', 0, 'success', 150)",
            (USER,),
        )
        url = f"http://127.0.0.1:{server.server_address[1]}/alerts"

        async def deliver() -> tuple[int, int]:
            ledger = Ledger(db_url, settings=Settings(budget_webhook_url=url))
            budgets = Budgets(ledger, db=db)
            return await budgets.deliver_alerts(), await budgets.deliver_alerts()

        assert asyncio.run(deliver()) == (1, 0)
    finally:
        server.shutdown()
        server.server_close()
    (alert,) = received
    assert (alert["user_id"], alert["period"], alert["threshold"], alert["spent_tokens"]) == (USER, "weekly", "1", 150)
    assert db.fetch_one("select notified_at is not null as done from budget_alerts") == {"done": True}
