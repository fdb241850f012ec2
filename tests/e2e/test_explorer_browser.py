"""The request explorer in a real browser at desktop and phone widths: the filters (a GET form, so the URL
can be shared), the drill-down with its attempts, a user's own view, the dashboard's latency percentiles,
and no sideways scrolling of the page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database
from tests.support.browser import FLAGS, WIDTHS, shot, sideways
from tests.support.server import Server, login_cookie, run_server

ALICE, BOB = "password_alice", "password_bob"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


def call(call_id: str, user: str, status: str = "success", **fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "provider": "openai",
        "user_profile_id": user,
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "reported_cost": 0.000036,
        "latency_ms": 200,
        "created_at": NOW,
        "messages": [{"role": "user", "content": f"a question from {call_id}"}],
        "response": {"choices": [{"message": {"role": "assistant", "content": f"the reply to {call_id}"}}]},
    }
    if status == "failure":
        base |= {"prompt_tokens": 0, "completion_tokens": 0, "reported_cost": 0.0, "error": "upstream 500",
                 "error_type": "InternalServerError", "response": None}  # fmt: skip
    return UsageEvent(call_id, "gpt-4o-mini", status, **(base | fields))  # type: ignore[arg-type]


def seed(db_url: str) -> None:
    earlier = NOW - dt.timedelta(seconds=5)
    events = [
        call("retried", ALICE, "failure", created_at=earlier, attempt_key="r1", model_group="mini-a",
             api_base="10.0.0.1", latency_ms=900),
        call("retried", ALICE, attempt_key="r2", model_group="mini-b", api_base="10.0.0.2", latency_ms=450,
             reasoning_tokens=12, metadata={"feature": "support-bot"}),
        call("failed", ALICE, "failure", created_at=NOW - dt.timedelta(seconds=8)),
        call("hit", ALICE, cache_hit=True, reported_cost=0.0, saved_cost=0.002, created_at=earlier, latency_ms=4),
        call("bobs", BOB, messages=[{"role": "user", "content": "bob's private question"}], created_at=earlier),
    ]  # fmt: skip
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.upsert_user_sync(ALICE, email="alice@example.com", full_name="Alice", provider="password")
        ledger.upsert_user_sync(BOB, email="bob@example.com", full_name="Bob", provider="password")
        for event in events:
            ledger.record(event)
        assert ledger.flush_sync()


@pytest.fixture(scope="module")
def admin_server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(module_db_url, tmp_path_factory.mktemp("home"), env={"LLMTALLY_ADMINS": ALICE}) as running:
        yield running


def open_page(playwright: Any, chromium: str, server: Server, width: str, login: str) -> Any:
    browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    cookies = [c.split("=", 1) for c in login_cookie(server, login, PASSWORDS[login]).split("; ")]
    context.add_cookies([{"name": n, "value": v, "url": server.url} for n, v in cookies])
    return context.new_page()


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_admin_filters_the_explorer_and_opens_a_call(
    admin_server: Server, db_url: str, chromium_path: str, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    seed(db_url)
    with sync_playwright() as p:
        page = open_page(p, chromium_path, admin_server, width, "alice")
        try:
            page.goto(f"{admin_server.url}/admin")
            page.wait_for_function("window.llmtallyReady === true", timeout=30_000)
            models = page.locator("#latency-models tbody tr", has_text="gpt-4o-mini")
            expect(models.locator("td").nth(2)).to_have_text("4")  # calls: the retried one counts once
            deployments = page.locator("#latency-deployments tbody tr")
            expect(deployments.filter(has_text="mini-a").locator("td").nth(4)).to_have_text("900 ms")
            expect(page.locator("#refusals")).to_contain_text("by a budget")  # the period's refusals, from the database
            assert sideways(page) == []
            shot(page, f"explorer-dashboard-latency-{width}")

            page.click("header nav a[href='/admin/requests']")
            rows = page.locator("#requests tbody tr")
            expect(rows).to_have_count(4)
            expect(rows.filter(has_text="bob")).to_have_count(1)  # every user's calls
            assert sideways(page) == []
            shot(page, f"explorer-admin-{width}")

            page.select_option("#explorer-filters select[name=status]", "failure")
            page.click("#explorer-filters button[type=submit]")
            expect(rows).to_have_count(1)
            assert "status=failure" in page.url  # the filter is in the URL, to share
            expect(rows.first).to_contain_text("InternalServerError")

            page.select_option("#explorer-filters select[name=status]", "")
            page.fill("#explorer-filters input[name=q]", "question from retried")
            page.click("#explorer-filters button[type=submit]")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("2 attempts")
            rows.first.locator("a").first.click()

            attempts = page.locator("#attempts tbody tr")
            expect(attempts).to_have_count(2)
            expect(attempts.nth(0)).to_contain_text("failure")
            expect(attempts.nth(0)).to_contain_text("10.0.0.1")
            expect(attempts.nth(0)).to_contain_text("upstream 500")
            expect(attempts.nth(1)).to_contain_text("mini-b")
            expect(page.locator("#tokens tbody td").nth(4)).to_have_text("12")  # reasoning tokens
            expect(page.locator("#call-pricing")).to_contain_text("priced")
            expect(page.locator("#metadata")).to_contain_text("support-bot")
            expect(page.locator("#reply")).to_contain_text("the reply to retried")
            assert sideways(page) == []
            shot(page, f"explorer-request-{width}")
        except Exception:
            shot(page, f"explorer-failure-{width}")
            raise
        finally:
            page.context.browser.close()


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_a_user_sees_only_their_own_calls(admin_server: Server, db_url: str, chromium_path: str, width: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    seed(db_url)
    with sync_playwright() as p:
        page = open_page(p, chromium_path, admin_server, width, "bob")
        try:
            page.goto(f"{admin_server.url}/usage")
            page.click("header nav a[href='/usage/requests']")
            rows = page.locator("#requests tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text("bob's private question")
            expect(page.locator("header nav a[href='/admin/requests']")).to_have_count(0)
            assert page.locator("#explorer-filters input[name=user]").count() == 0
            assert sideways(page) == []
            shot(page, f"explorer-usage-{width}")

            rows.first.locator("a").first.click()
            expect(page.locator("#call-status")).to_have_text("success")
            with Database(db_url) as db:
                row = db.fetch_one("select id from public.request_logs where call_key = 'retried'")
            assert row is not None
            other = row["id"]  # one of Alice's calls
            response = page.goto(f"{admin_server.url}/usage/requests/{other}")
            assert response is not None and response.status == 404
            expect(page.locator("#not-found")).to_be_visible()
            assert "question from" not in page.content()
            response = page.goto(f"{admin_server.url}/admin/requests")
            assert response is not None and response.status == 403
        except Exception:
            shot(page, f"explorer-failure-user-{width}")
            raise
        finally:
            page.context.browser.close()
