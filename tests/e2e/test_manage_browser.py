"""Administration in a real browser at desktop and phone widths: a budget with its progress bar, a price,
a token shown once, a user deleted after typing their id, the audit log naming the administrator; no
page scrolls sideways; a form posted from another origin is refused and changes nothing."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmtally import Ledger, Settings, UsageEvent, budgets
from llmtally.db import Database
from tests.support.browser import FLAGS, WIDTHS, shot, sideways
from tests.support.server import Server, login_cookie, run_server

ALICE = "password_alice"  # the administrator
# The tests share one server and database: each uses a user of its own.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
PAGES = ["/admin/budgets", "/admin/prices", "/admin/tokens", "/admin/users", "/admin/audit"]


def seed(db_url: str, user: str) -> None:
    """The user spent $0.25 on two calls; one of a model without a price (its own name, so unpriced)."""
    calls = [
        UsageEvent(f"{user}-1", "gpt-4o-mini", "success", user_profile_id=user, provider="openai", prompt_tokens=100,
                   completion_tokens=20, reported_cost=0.25, created_at=NOW),
        UsageEvent(f"{user}-2", f"{user}-model", "success", user_profile_id=user, provider="acme",
                   prompt_tokens=1_000_000, completion_tokens=0, created_at=NOW),
    ]  # fmt: skip
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.upsert_user_sync(ALICE, email="alice@example.com", full_name="Alice", provider="password")
        ledger.upsert_user_sync(user, email=f"{user}@example.com", full_name="Carol", provider="google")
        for event in calls:
            ledger.record(event)
        assert ledger.flush_sync()


@pytest.fixture(scope="module")
def admin_server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(module_db_url, tmp_path_factory.mktemp("home"), env={"LLMTALLY_ADMINS": ALICE}) as running:
        yield running


def open_page(playwright: Any, chromium: str, server: Server, width: str) -> Any:
    browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h})
    cookies = [c.split("=", 1) for c in login_cookie(server, "alice", "alice-password").split("; ")]
    context.add_cookies([{"name": n, "value": v, "url": server.url} for n, v in cookies])
    return context.new_page()


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_an_administrator_manages_everything_in_the_pages(
    admin_server: Server, module_db_url: str, chromium_path: str, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    carol = f"google_carol_{width}"
    seed(module_db_url, carol)
    with sync_playwright() as p:
        page = open_page(p, chromium_path, admin_server, width)
        try:
            page.goto(f"{admin_server.url}/admin")
            page.click("header nav a[href='/admin/budgets']")
            form = page.locator("#set-budget")
            form.locator("input[name=user]").fill(carol)
            form.locator("select[name=period]").select_option("lifetime")
            form.locator("input[name=usd]").fill("1")
            form.locator("button[type=submit]").click()
            expect(page.locator("#notice")).to_have_text(f"Set the lifetime budget of {carol}.")
            row = page.locator("#budgets tbody tr", has_text=carol)
            expect(row).to_contain_text("$0.250000 spent · $0.000000 reserved · $0.750000 left")
            width_pct = row.locator(".bar .spent").evaluate("e => e.style.width")
            assert width_pct == "25%", width_pct
            assert sideways(page) == []
            shot(page, f"manage-budgets-{width}")

            page.click(".manage-nav a[href='/admin/prices']")
            form = page.locator("#set-price")
            form.locator("input[name=model]").fill(f"{carol}-model")
            form.locator("input[name=input]").fill("0.5")
            form.locator("input[name=output]").fill("1")
            form.locator("button[type=submit]").click()
            expect(page.locator("#notice")).to_have_text(f"Set the price of {carol}-model and repriced 1 stored call.")
            expect(page.locator("#prices tbody tr", has_text=f"{carol}-model")).to_contain_text("0.5")
            assert sideways(page) == []
            shot(page, f"manage-prices-{width}")

            page.click(".manage-nav a[href='/admin/tokens']")
            form = page.locator("#create-token")
            form.locator("input[name=user]").fill(carol)
            form.locator("input[name=name]").fill(f"notebook {width}")
            form.locator("button[type=submit]").click()
            token = page.locator("#new-token-value").inner_text()
            assert re.fullmatch(r"lt_[A-Za-z0-9_-]{40,}", token)
            me = httpx.get(f"{admin_server.url}/api/v1/usage/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["user_id"] == carol
            assert sideways(page) == []
            shot(page, f"manage-tokens-{width}")
            page.locator("#tokens tbody tr", has_text=f"notebook {width}").locator("button", has_text="Revoke").click()
            expect(page.locator("#notice")).to_contain_text("refused from now on")
            again = httpx.get(f"{admin_server.url}/api/v1/usage/me", headers={"Authorization": f"Bearer {token}"})
            assert again.status_code == 401

            page.click(".manage-nav a[href='/admin/users']")
            user_row = page.locator("#users tbody tr", has_text=carol)
            user_row.locator(".delete-user input[name=confirm]").fill(carol)
            assert sideways(page) == []
            shot(page, f"manage-users-{width}")
            user_row.locator(".delete-user button").click()
            expect(page.locator("#notice")).to_contain_text(f"Deleted {carol}: 2 calls kept as anonymous usage")
            expect(page.locator("#users tbody tr", has_text=carol)).to_have_count(0)

            page.click(".manage-nav a[href='/admin/audit']")
            rows = page.locator("#audit tbody tr")
            expect(rows.filter(has_text="deleted user").filter(has_text=carol)).to_have_count(1)
            expect(rows.filter(has_text="set budget").first).to_contain_text(f"web:{ALICE}")
            expect(rows.filter(has_text="created API token").filter(has_text=carol)).to_have_count(1)
            assert sideways(page) == []
            shot(page, f"manage-audit-{width}")
        finally:
            page.context.browser.close()


def test_a_form_posted_from_another_origin_is_refused(admin_server: Server, module_db_url: str) -> None:
    dave = "google_dave"
    seed(module_db_url, dave)
    cookie = login_cookie(admin_server, "alice", "alice-password")
    page = httpx.get(f"{admin_server.url}/admin/budgets", headers={"Cookie": cookie})
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert page.status_code == 200 and csrf
    form = {"csrf": csrf.group(1), "action": "set_budget", "user": dave, "period": "daily", "usd": "1000"}
    foreign = httpx.post(
        f"{admin_server.url}/admin/budgets", data=form, headers={"Cookie": cookie, "Origin": "http://127.0.0.1:1"}
    )
    assert foreign.status_code == 403
    own = httpx.post(
        f"{admin_server.url}/admin/budgets", data=form, headers={"Cookie": cookie, "Origin": admin_server.url}
    )
    assert own.status_code == 200
    with Database(module_db_url) as db:
        assert [(b.user_profile_id, b.period) for b in budgets.list_budgets(db)].count((dave, "daily")) == 1
