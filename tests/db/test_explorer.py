"""The request explorer's queries: every filter, the sorts, the pages, and row-level security in the list
and the drill-down. Two seeded databases per module (the end-user filter's team calls have their own);
the tests only read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmtally import Ledger, Settings, UsageEvent, UserInputError
from llmtally.analytics import Analytics
from llmtally.analytics.explorer import PAGE_SIZE, ExplorerFilter, RequestExplorer
from llmtally.db import Database
from tests.support.cluster import Cluster

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TODAY = NOW.date()
ADA, BOB = "password_ada", "password_bob"
BULK = PAGE_SIZE + 5  # Bob's many small calls: more than one page


def event(call: str, user: str, **fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": "success",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "reported_cost": 0.001,
        "latency_ms": 300,
        "created_at": NOW,
        "messages": [{"role": "user", "content": f"question {call}"}],
        "response": {"choices": [{"message": {"role": "assistant", "content": f"answer {call}"}}]},
    }
    return UsageEvent(litellm_call_id=call, user_profile_id=user, **(base | fields))


@pytest.fixture(scope="module")
def db(cluster: Cluster, template: str) -> Iterator[Database]:
    with cluster.database(template) as url:
        earlier = NOW - dt.timedelta(seconds=30)
        events = [
            # a call that failed on one deployment and succeeded on another: one logical call, two attempts
            event("ada-retried", ADA, status="failure", attempt_key="r1", model_group="mini-a", api_base="10.0.0.1",
                  prompt_tokens=0, completion_tokens=0, reported_cost=0.0, error="upstream 500",
                  error_type="InternalServerError", latency_ms=900, created_at=earlier),
            event("ada-retried", ADA, attempt_key="r2", model_group="mini-b", api_base="10.0.0.2", latency_ms=400,
                  cached_tokens=40, reasoning_tokens=7, metadata={"session_id": "s-1", "feature": "chat"}),
            event("ada-hit", ADA, cache_hit=True, reported_cost=0.0, saved_cost=0.002, latency_ms=5,
                  created_at=NOW - dt.timedelta(seconds=20)),
            event("ada-estimated", ADA, usage_source="estimated", stream=True, model="claude-haiku-4-5",
                  provider="anthropic", prompt_tokens=2000, reported_cost=0.05, latency_ms=4000, first_token_ms=250,
                  created_at=NOW - dt.timedelta(seconds=10),
                  messages=[{"role": "user", "content": "the 50% discount_code please"}]),
            event("ada-cancelled", ADA, status="cancelled", model="claude-haiku-4-5", provider="anthropic",
                  reported_cost=None, latency_ms=None, created_at=NOW - dt.timedelta(days=3),
                  response={"partial": "I was say"}),
            event("ada-old", ADA, created_at=NOW - dt.timedelta(days=40)),
            event("ada-unpriced", ADA, model="acme-internal", provider="acme", reported_cost=None, latency_ms=50,
                  created_at=NOW - dt.timedelta(days=5)),
            *(event(f"bob-{n:02d}", BOB, prompt_tokens=1, completion_tokens=n, reported_cost=0.0001 * (n + 1),
                    latency_ms=10 + n, created_at=NOW - dt.timedelta(minutes=n + 1),
                    messages=[{"role": "user", "content": "bob secret"}]) for n in range(BULK)),
        ]  # fmt: skip
        with Ledger(url, settings=Settings(flush_interval_ms=20)) as ledger:
            for user in (ADA, BOB):
                ledger.upsert_user_sync(user, email=f"{user}@example.com")
            for e in events:
                ledger.record(e)
            assert ledger.flush_sync()
        with Database(url) as database:
            yield database


def ids(page: Any) -> list[str]:
    return [r.model + ":" + str(r.tokens_used) for r in page.rows]


def calls(explorer: RequestExplorer, **params: str) -> list[int]:
    return [r.id for r in explorer.page(ExplorerFilter.from_params(params, allow_user=explorer.viewer is None)).rows]


def id_of(db: Database, call_id: str) -> int:
    row = db.fetch_one("select id from public.request_logs where call_key = %s", (call_id,))
    assert row is not None
    return int(row["id"])


def test_every_filter_narrows_the_list(db: Database) -> None:
    everyone = RequestExplorer(db, with_content=True)
    ada = {
        name: id_of(db, name)
        for name in ("ada-retried", "ada-hit", "ada-estimated", "ada-cancelled", "ada-old", "ada-unpriced")
    }
    assert set(calls(everyone, user=ADA, since="2000-01-01")) == set(ada.values())
    assert set(calls(everyone, user=ADA)) == set(ada.values()) - {ada["ada-old"]}  # by default the last 30 days
    assert calls(everyone, user=ADA, model="claude-haiku-4-5") == [ada["ada-estimated"], ada["ada-cancelled"]]
    assert calls(everyone, user=ADA, provider="anthropic") == [ada["ada-estimated"], ada["ada-cancelled"]]
    assert calls(everyone, status="cancelled") == [ada["ada-cancelled"]]
    assert calls(everyone, cache_hit="yes") == [ada["ada-hit"]]
    assert ada["ada-hit"] not in calls(everyone, user=ADA, cache_hit="no")
    assert calls(everyone, estimated="yes") == [ada["ada-estimated"]]
    assert calls(
        everyone, user=ADA, since=str(TODAY - dt.timedelta(days=41)), until=str(TODAY - dt.timedelta(days=6))
    ) == [ada["ada-old"]]
    # the end date is inclusive: a call of that day is in
    three_days_ago = str((NOW - dt.timedelta(days=3)).date())
    assert calls(everyone, user=ADA, since=three_days_ago, until=three_days_ago) == [ada["ada-cancelled"]]
    # text in the prompt or the reply; LIKE's wildcards are taken literally
    assert calls(everyone, q="50% discount_code") == [ada["ada-estimated"]]
    assert calls(everyone, q="5_% discount") == []
    assert calls(everyone, q="I was say") == [ada["ada-cancelled"]]
    assert len(calls(everyone, q="BOB SECRET")) == PAGE_SIZE  # case-insensitive, and a full page


def test_sorts_and_pages(db: Database) -> None:
    everyone = RequestExplorer(db, with_content=False)
    newest = everyone.page(ExplorerFilter(user_id=BOB))
    assert len(newest.rows) == PAGE_SIZE and newest.has_next
    assert [r.created_at for r in newest.rows] == sorted((r.created_at for r in newest.rows), reverse=True)
    second = everyone.page(ExplorerFilter(user_id=BOB, page=2))
    assert len(second.rows) == BULK - PAGE_SIZE and not second.has_next
    assert not {r.id for r in second.rows} & {r.id for r in newest.rows}
    by_cost = everyone.page(ExplorerFilter(user_id=BOB, sort="cost")).rows
    assert by_cost[0].total_cost == Decimal("0.0001") * BULK
    cheapest = everyone.page(ExplorerFilter(user_id=BOB, sort="cost", descending=False)).rows
    assert cheapest[0].total_cost == Decimal("0.0001")
    assert everyone.page(ExplorerFilter(user_id=BOB, sort="tokens")).rows[0].tokens_used == 1 + BULK - 1
    slowest = everyone.page(ExplorerFilter(user_id=ADA, sort="latency")).rows
    assert [r.latency_ms for r in slowest][:2] == [4000, 400]
    assert slowest[-1].latency_ms is None  # untimed calls last, whichever the direction
    assert everyone.page(ExplorerFilter(user_id=ADA, sort="latency", descending=False)).rows[-1].latency_ms is None
    unpriced_last = everyone.page(ExplorerFilter(user_id=ADA, sort="cost", descending=False)).rows
    assert unpriced_last[-1].total_cost is None and unpriced_last[-1].cost_status == "unpriced"


def test_bad_parameters_are_one_line_errors(db: Database) -> None:
    for params, message in [
        ({"status": "weird"}, "status must be one of success, failure, cancelled"),
        ({"sort": "id; drop table x"}, "sort must be one of time, cost, tokens, latency"),
        ({"since": "yesterday"}, "since must be a date like 2026-01-31"),
        ({"since": "2026-02-02", "until": "2026-02-01"}, "must not be before since"),
        ({"page": "0"}, "page must be a whole number from 1 to 200"),
        ({"page": "201"}, "page must be a whole number from 1 to 200"),
        ({"cache_hit": "maybe"}, "cache_hit must be one of yes, no"),
        ({"q": "x" * 201}, "q must be at most 200 characters"),
        ({"end_user": "x" * 501}, "end_user must be at most 500 characters, without NUL"),
        ({"end_user": "ann\x00"}, "end_user must be at most 500 characters, without NUL"),
    ]:
        with pytest.raises(UserInputError, match=message):
            ExplorerFilter.from_params(params, allow_user=True)
    with pytest.raises(UserInputError, match="only administrators filter by user"):
        ExplorerFilter.from_params({"user": BOB}, allow_user=False)
    with pytest.raises(UserInputError, match="text search needs stored content"):
        RequestExplorer(db, with_content=False).page(ExplorerFilter(text="x"))


def test_a_shared_url_gives_back_the_same_filter() -> None:
    where = ExplorerFilter.from_params(
        {"user": ADA, "status": "failure", "cache_hit": "no", "since": "2026-01-01", "sort": "cost", "order": "asc",
         "end_user": "member-ann"},
        allow_user=True,
    )  # fmt: skip
    assert where.end_user == "member-ann" and where.params()["end_user"] == "member-ann"
    assert ExplorerFilter.from_params(where.params(), allow_user=True) == where
    # a user may narrow their own calls by end user (only the user filter is for administrators)
    assert ExplorerFilter.from_params({"end_user": "member-ann"}, allow_user=False).end_user == "member-ann"
    assert "end_user" not in ExplorerFilter.from_params({"end_user": "  "}, allow_user=True).params()


def test_drill_down_has_every_attempt_tokens_by_type_and_pricing(db: Database) -> None:
    detail = RequestExplorer(db, with_content=True).detail(id_of(db, "ada-retried"))
    assert detail is not None
    assert (detail.status, detail.attempt_count, detail.failed_attempts) == ("success", 2, 1)
    assert [(a.status, a.model_group, a.api_base, a.latency_ms) for a in detail.attempts] == [
        ("failure", "mini-a", "10.0.0.1", 900),
        ("success", "mini-b", "10.0.0.2", 400),
    ]
    assert detail.attempts[0].error == "upstream 500"
    assert detail.first_token_ms is None and {a.first_token_ms for a in detail.attempts} == {None}  # not streamed
    streamed = RequestExplorer(db, with_content=False).detail(id_of(db, "ada-estimated"))
    assert streamed is not None and streamed.stream and streamed.first_token_ms == 250
    assert [a.first_token_ms for a in streamed.attempts] == [250]
    assert (detail.cached_tokens, detail.reasoning_tokens) == (40, 7)
    assert detail.cost_status == "priced" and "LiteLLM reported" in detail.pricing
    assert detail.metadata.get("feature") == "chat"
    assert detail.messages == [{"role": "user", "content": "question ada-retried"}]
    hidden = RequestExplorer(db, with_content=False).detail(id_of(db, "ada-retried"))
    assert hidden is not None and hidden.messages is None and hidden.response is None
    assert RequestExplorer(db, with_content=True).detail(10**15) is None


def test_a_user_sees_only_their_own_calls_in_the_list_and_the_drill_down(db: Database) -> None:
    ada = RequestExplorer(db, with_content=True, viewer=ADA)
    listed = ada.page(ExplorerFilter()).rows
    assert {r.user_profile_id for r in listed} == {ADA} and len(listed) == 6
    assert ada.page(ExplorerFilter(text="bob secret")).rows == []
    assert ada.page(ExplorerFilter(user_id=BOB)).rows  # the viewer wins over a user filter: still Ada's own
    assert {r.user_profile_id for r in ada.page(ExplorerFilter(user_id=BOB)).rows} == {ADA}
    assert ada.detail(id_of(db, "bob-00")) is None  # another user's id: nothing, not even that it exists
    own = ada.detail(id_of(db, "ada-retried"))
    assert own is not None and len(own.attempts) == 2
    assert {m for m, _ in ada.choices()} == {"gpt-4o-mini", "claude-haiku-4-5", "acme-internal"}
    bob = RequestExplorer(db, with_content=True, viewer=BOB)
    assert bob.detail(id_of(db, "ada-retried")) is None
    assert {r.user_profile_id for r in bob.page(ExplorerFilter(page=2)).rows} == {BOB}


TEAM, ANN, CY = "team:research", "member-ann", "member-cy"


@pytest.fixture(scope="module")
def team_db(cluster: Cluster, template: str) -> Iterator[Database]:
    """A team key's calls naming two members as end users, one naming nobody, and Ada's own calls."""
    with cluster.database(template) as url:
        hours = [NOW - dt.timedelta(hours=h) for h in range(8)]
        events = [
            event("ann-1", TEAM, end_user=ANN, created_at=hours[1]),
            event("ann-2", TEAM, end_user=ANN, status="failure", prompt_tokens=0, completion_tokens=0,
                  reported_cost=0.0, error="upstream 500", error_type="InternalServerError", created_at=hours[2]),
            event("ann-3", TEAM, end_user=ANN, model="claude-haiku-4-5", provider="anthropic", created_at=hours[3]),
            event("ann-old", TEAM, end_user=ANN, created_at=NOW - dt.timedelta(days=40)),
            event("cy-1", TEAM, end_user=CY, created_at=hours[4]),
            event("cy-2", TEAM, end_user=CY, status="failure", prompt_tokens=0, completion_tokens=0,
                  reported_cost=0.0, error="upstream 500", error_type="InternalServerError", created_at=hours[5]),
            event("team-unnamed", TEAM, created_at=hours[6]),  # the key named nobody
            event("ada-own", ADA, end_user=ADA, created_at=hours[7]),  # a key's own call: its user is the end user
            event("ada-for-ann", ADA, end_user=ANN, created_at=hours[0]),  # Ada's own key, naming the same end user
        ]  # fmt: skip
        with Ledger(url, settings=Settings(flush_interval_ms=20)) as ledger:
            for e in events:
                ledger.record(e)
            assert ledger.flush_sync()
        with Database(url) as database:
            yield database


def test_the_end_user_filter_gives_exactly_that_end_user_s_calls(team_db: Database) -> None:
    everyone = RequestExplorer(team_db, with_content=True)
    call = {r["call_key"]: int(r["id"]) for r in team_db.fetch_all("select call_key, id from public.request_logs")}

    def named(*keys: str) -> list[int]:
        return [call[k] for k in keys]

    # newest first, within the default 30 days; the team's and Ada's calls alike
    assert calls(everyone, end_user=ANN) == named("ada-for-ann", "ann-1", "ann-2", "ann-3")
    every = named("ada-for-ann", "ann-1", "ann-2", "ann-3", "ann-old")
    assert calls(everyone, end_user=ANN, since="2000-01-01") == every
    assert calls(everyone, end_user=CY) == named("cy-1", "cy-2")
    assert calls(everyone, end_user=ADA) == named("ada-own")
    assert {r.end_user for r in everyone.page(ExplorerFilter(end_user=ANN)).rows} == {ANN}
    # combined with the other filters
    assert calls(everyone, end_user=ANN, user=TEAM) == named("ann-1", "ann-2", "ann-3")
    assert calls(everyone, end_user=ANN, user=ADA) == named("ada-for-ann")
    assert calls(everyone, end_user=ANN, status="failure") == named("ann-2")
    assert calls(everyone, end_user=CY, status="failure") == named("cy-2")
    assert calls(everyone, end_user=ANN, model="claude-haiku-4-5") == named("ann-3")
    assert calls(everyone, end_user=ANN, sort="cost", order="asc")[0] == call["ann-2"]  # the failure cost 0
    # exactly: no prefix, no other case, no LIKE wildcard; surrounding spaces are dropped like any filter's
    for near in ("member-an", "MEMBER-ANN", "member-%", "member-_nn", "member"):
        assert calls(everyone, end_user=near) == [], near
    assert calls(everyone, end_user=f"  {ANN} ") == calls(everyone, end_user=ANN)
    # without the filter every call of the period is there, the unnamed one too
    assert call["team-unnamed"] in calls(everyone, user=TEAM)
    assert call["team-unnamed"] not in calls(everyone, end_user=TEAM)


def test_a_user_s_end_user_filter_narrows_only_their_own_calls(team_db: Database) -> None:
    ada = RequestExplorer(team_db, with_content=True, viewer=ADA)
    own = ada.page(ExplorerFilter(end_user=ANN)).rows
    assert [(r.user_profile_id, r.end_user, r.messages) for r in own] == [
        (ADA, ANN, [{"role": "user", "content": "question ada-for-ann"}])
    ]  # the team's calls naming the same end user are not Ada's to read
    assert [r.end_user for r in ada.page(ExplorerFilter(end_user=ADA)).rows] == [ADA]
    assert ada.page(ExplorerFilter(end_user=CY)).rows == []
    assert RequestExplorer(team_db, with_content=True, viewer=ANN).page(ExplorerFilter(end_user=ANN)).rows == []


def test_latency_percentiles_by_model_and_deployment(db: Database) -> None:
    latency = Analytics(db).latency_percentiles(TODAY - dt.timedelta(days=60))
    models = {(m.model, m.provider): m for m in latency.by_model}
    mini = models[("gpt-4o-mini", "openai")]
    assert mini.requests == BULK + 3  # Bob's, the retried call, the cache hit and the old call
    # 58 latencies: 5 (the cache hit), Bob's 10..64, 300 (the old call), 400 (the retried call's outcome)
    assert (mini.p50_ms, mini.p95_ms, mini.p99_ms) == (37, 64, 400)
    haiku = models[("claude-haiku-4-5", "anthropic")]
    assert (haiku.requests, haiku.timed, haiku.cancelled, haiku.p50_ms) == (2, 1, 1, 4000)
    # one of them streamed, its first chunk after 250 ms; no call of the other model streamed
    assert (haiku.streamed, haiku.first_token_p50_ms, haiku.first_token_p95_ms) == (1, 250, 250)
    assert (mini.streamed, mini.first_token_p50_ms) == (0, None)
    deployments = {d.model_group: d for d in latency.by_deployment}
    assert (deployments["mini-a"].failures, deployments["mini-a"].p95_ms) == (1, 900)
    assert deployments["mini-b"].p50_ms == 400
    assert latency.sampled == BULK + 6
