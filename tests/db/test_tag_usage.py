"""Cost by tag (the dashboard's "By tag", /api/v1/admin/tags): each tagged call counts under each of its
tags, untagged calls and tags that are not a list of strings under none, the period's bounds hold."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally import Ledger, Settings, UsageEvent
from llmtally.analytics import Analytics
from llmtally.analytics.explorer import ExplorerFilter, RequestExplorer
from llmtally.api_tokens import create_token
from llmtally.app.web import WebState, install_web
from llmtally.db import Database

pytestmark = pytest.mark.sql

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
USER = "github_tagged"


def call(call_id: str, metadata: dict[str, Any], cost: float | None = 0.01, **fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "user_profile_id": USER,
        "provider": "openai" if cost is not None else "acme",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "reported_cost": cost,
        "metadata": metadata,
        "created_at": NOW,
    }
    model = "gpt-4o-mini" if cost is not None else "acme-unpriced"
    return UsageEvent(call_id, model, "success", **(base | fields))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for event in [
            call("a", {"tags": ["nightly", "reports"]}),
            call("b", {"tags": ["nightly"]}, cost=0.02),
            call("c", {"tags": ["reports"]}, cost=None),  # unpriced
            call("d", {"tags": "not-a-list"}),
            call("e", {"feature": "chat"}),  # untagged
            call("old", {"tags": ["nightly"]}, created_at=NOW - dt.timedelta(days=40)),
        ]:
            ledger.record(event)
        assert ledger.flush_sync()
    with Database(db_url) as database:
        yield database


def test_each_tagged_call_counts_under_each_of_its_tags(db: Database) -> None:
    with Analytics(db) as analytics:
        rows = analytics.tag_usage(NOW.date() - dt.timedelta(days=7), NOW.date() + dt.timedelta(days=1))
    assert [(r.tag, r.requests, r.total_tokens, r.cost, r.unpriced_requests) for r in rows] == [
        ("nightly", 2, 30, Decimal("0.03"), 0),
        ("reports", 2, 30, Decimal("0.01"), 1),
    ]


def test_the_period_bounds_hold_and_a_user_reads_only_their_own(db: Database) -> None:
    with Analytics(db) as analytics:
        older = analytics.tag_usage(NOW.date() - dt.timedelta(days=60), NOW.date() - dt.timedelta(days=20))
    assert [(r.tag, r.requests) for r in older] == [("nightly", 1)]
    with Analytics.for_user(db, "github_someone_else") as theirs:
        assert theirs.tag_usage(NOW.date() - dt.timedelta(days=7), NOW.date() + dt.timedelta(days=1)) == []
    with Analytics.for_user(db, USER) as mine:
        assert len(mine.tag_usage(NOW.date() - dt.timedelta(days=7), NOW.date() + dt.timedelta(days=1))) == 2


def test_the_explorer_filters_by_tag(db: Database) -> None:
    explorer = RequestExplorer(db, with_content=False)
    week = {"since": NOW.date() - dt.timedelta(days=7)}
    tagged = explorer.page(ExplorerFilter(tag="reports", **week)).rows
    assert sorted(db_call_ids(db, [r.id for r in tagged])) == ["a", "c"]
    assert explorer.page(ExplorerFilter(tag="not-a-list", **week)).rows == []  # a string is not a tag list
    assert ExplorerFilter.from_params({"tag": "nightly"}, allow_user=True).params()["tag"] == "nightly"


def db_call_ids(db: Database, ids: list[int]) -> list[str]:
    rows = db.fetch_all("select litellm_call_id from request_logs where id = any(%s)", (ids,))
    return [r["litellm_call_id"] for r in rows]


def test_a_user_reads_their_own_tags_in_the_api_and_on_their_page(db: Database) -> None:
    app = FastAPI()
    install_web(app, WebState(db=db, admins=frozenset(), show_content=True))
    token, _ = create_token(db, USER)
    with TestClient(app) as client:
        mine = {"Authorization": f"Bearer {token}"}
        listed = client.get("/api/v1/usage/me/tags", headers=mine).json()
        page = client.get("/usage", headers=mine).text
    assert [(r["tag"], r["requests"]) for r in listed] == [("nightly", 2), ("reports", 2)]  # this month
    assert 'id="tags"' in page and "nightly" in page and "$0.010000 + 1 unpriced" in page
