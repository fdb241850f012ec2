"""Retries, cache hits and estimated usage as a reader sees them: the dashboard and the usage page in a
real browser, at desktop and phone widths, on calls recorded through the ledger."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from llmtally import Ledger, Settings, UsageEvent, budgets, teams
from llmtally.db import Database
from tests.support.browser import ARTIFACTS, FLAGS, WIDTHS, sideways
from tests.support.server import Server, login_cookie, run_server

ALICE = "password_alice"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def call(call_id: str, status: str, **fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "provider": "openai",
        "user_profile_id": ALICE,
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "reported_cost": 0.000036,
        "latency_ms": 200,
        "created_at": NOW,
    }
    if status == "failure":
        base |= {"prompt_tokens": 0, "completion_tokens": 0, "reported_cost": 0.0, "error": "upstream 500"}
    return UsageEvent(call_id, "gpt-4o-mini", status, **(base | fields))  # type: ignore[arg-type]


def seed(db_url: str) -> None:
    """One call retried on another deployment, one cache hit, one stream whose usage was estimated."""
    earlier = NOW - dt.timedelta(seconds=5)
    events = [
        call("retried", "failure", created_at=earlier, attempt_key="r1", model_group="mini-a", api_base="10.0.0.1"),
        call("retried", "success", attempt_key="r2", model_group="mini-b", api_base="10.0.0.2"),
        call("hit", "success", cache_hit=True, reported_cost=0.0, saved_cost=0.002, created_at=earlier),
        call("estimated", "success", usage_source="estimated", stream=True, created_at=earlier),
    ]
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.upsert_user_sync(ALICE, email="alice@example.com", full_name="Alice", provider="password")
        for event in events:
            ledger.record(event)
        assert ledger.flush_sync()
    with Database(db_url) as db:  # Alice is in a team with a budget (its calls are the team's, none yet)
        if not teams.list_teams(db):
            teams.create_team(db, "field", title="Field team")
            teams.add_member(db, "field", ALICE)
            budgets.set_budget(db, "team:field", "monthly", limit_usd=Decimal("20"))


@pytest.fixture(scope="module")
def admin_server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(module_db_url, tmp_path_factory.mktemp("home"), env={"LLMTALLY_ADMINS": ALICE}) as running:
        yield running


def browser_page(playwright: Any, chromium: str, server: Server, width: str) -> Any:
    browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    cookies = [c.split("=", 1) for c in login_cookie(server, "alice", "alice-password").split("; ")]
    context.add_cookies([{"name": n, "value": v, "url": server.url} for n, v in cookies])
    return context.new_page()


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_dashboard_shows_retries_cache_hits_and_estimates(
    admin_server: Server, db_url: str, chromium_path: str, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    seed(db_url)
    with sync_playwright() as p:
        page = browser_page(p, chromium_path, admin_server, width)
        try:
            page.goto(f"{admin_server.url}/admin")
            page.wait_for_function("window.llmtallyReady === true", timeout=30_000)
            expect(page.locator("#totals [data-key=requests] .value")).to_have_text("3")  # calls, not attempts
            model = page.locator("#models tbody tr", has_text="gpt-4o-mini")
            expect(model).to_have_count(1)
            cells = model.locator("td")
            expect(cells.nth(2)).to_have_text("3")  # requests
            expect(cells.nth(3)).to_have_text("0")  # failures: the retried call succeeded
            expect(cells.nth(4)).to_have_text("1")  # retries
            expect(cells.nth(5)).to_have_text("1")  # cache hits
            expect(cells.nth(6)).to_have_text("$0.002")  # saved by the cache
            expect(cells.nth(10)).to_have_text("$0.000036 (1 call)")  # the estimated call's cost
            deployments = page.locator("#deployments tbody tr")
            expect(deployments.filter(has_text="mini-a")).to_contain_text("100.00 %")
            expect(deployments.filter(has_text="mini-b")).to_contain_text("0.00 %")
            expect(page.locator("#teams tbody tr", has_text="Field team")).to_contain_text(ALICE)
            assert sideways(page) == []
            page.screenshot(path=str(ARTIFACTS / f"admin-field-{width}.png"), full_page=True)

            page.goto(f"{admin_server.url}/usage")
            recent = page.locator("#recent tbody tr")
            expect(recent).to_have_count(3)
            expect(recent.filter(has_text="cache hit")).to_contain_text("saved $0.002")
            expect(recent.filter(has_text="estimated usage")).to_have_count(1)
            expect(recent.filter(has_text="1 retry")).to_have_count(1)
            expect(page.locator("#teams")).to_contain_text("monthly budget: $0.000000 of $20.000000")
            assert sideways(page) == []
            page.screenshot(path=str(ARTIFACTS / f"usage-teams-{width}.png"), full_page=True)
        except Exception:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"field-failure-{width}.png"), full_page=True)
            raise
        finally:
            page.context.browser.close()
