"""The dashboard and the usage page in a real browser, on data just recorded through the chat."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmtally.db import Database
from tests.support.browser import ARTIFACTS, FLAGS, send_message
from tests.support.server import Server, run_server


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    with run_server(db_url, tmp_path / "home", env={"LLMTALLY_ADMINS": "password_alice"}) as running:
        yield running


def login_and_chat(page: Any, server: Server, user: str, message: str) -> None:
    from playwright.sync_api import expect

    page.goto(server.url)
    page.get_by_label("Email").or_(page.locator("input#email")).first.fill(user)
    page.locator("input[type=password]").fill(f"{user}-password")
    page.get_by_role("button", name="Sign In").or_(page.get_by_role("button", name="Continue")).first.click()
    composer = page.locator("#chat-input")
    expect(composer).to_be_visible(timeout=30_000)
    expect(page.get_by_text("No requests yet.")).to_be_visible(timeout=30_000)  # the chat session has started
    send_message(page, message)
    expect(page.get_by_text("1 request (", exact=False)).to_be_visible(timeout=30_000)  # recorded and rolled up


def chart_totals(page: Any) -> dict[str, float]:
    """Sum of every dataset of every chart on the page, read from the Chart.js instances."""
    return dict(
        page.evaluate(
            """() => Object.fromEntries(Object.entries(window.llmtallyCharts).map(([id, chart]) =>
                 [id, chart.data.datasets.flatMap(d => d.data).reduce((s, v) => s + Number(v), 0)]))"""
        )
    )


def canvas_inked(page: Any, selector: str) -> bool:
    """Some pixel of the canvas is drawn (not fully transparent)."""
    return bool(
        page.evaluate(
            """(sel) => { const c = document.querySelector(sel);
                 const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true; return false; }""",
            selector,
        )
    )


def test_admin_dashboard_non_admin_and_own_usage_in_chromium(
    server: Server,
    db: Database,
    chromium_path: str,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    anonymous = httpx.get(f"{server.url}/admin", follow_redirects=False, timeout=10)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login"
    assert httpx.get(f"{server.url}/login", timeout=10).status_code == 200  # Chainlit's login page
    assert httpx.get(f"{server.url}/api/v1/usage/me", timeout=10).status_code == 401

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        alice = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        bob = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        try:
            login_and_chat(alice, server, "alice", "Alice asks about tea")
            login_and_chat(bob, server, "bob", "Bob asks about coffee")

            # the admin's dashboard draws the calls just made
            alice.goto(f"{server.url}/admin")
            alice.wait_for_function("window.llmtallyReady === true", timeout=30_000)
            totals = chart_totals(alice)
            assert totals["chart-requests"] == 2 and totals["chart-models"] == 2, totals
            assert totals["chart-tokens"] > 0 and totals["chart-latency"] == 2, totals
            for chart in ("cost", "tokens", "requests", "users", "models", "latency"):
                assert canvas_inked(alice, f"#chart-{chart}"), chart
            expect(alice.locator("#totals [data-key=requests] .value")).to_have_text("2")
            expect(alice.locator("#totals [data-key=active_users] .value")).to_have_text("2")
            expect(alice.locator("#top-users tbody tr")).to_have_count(2)
            alice.screenshot(path=str(ARTIFACTS / "admin.png"), full_page=True)

            # click through to a user's page
            alice.locator("#top-users a", has_text="password_bob").click()
            expect(alice.locator("h1")).to_have_text("bob")  # titled by name; the id beside it
            expect(alice.locator("#user-id")).to_have_text("password_bob")
            expect(alice.locator("#recent tbody tr")).to_have_count(1)

            # a non-admin is refused
            response = bob.goto(f"{server.url}/admin")
            assert response is not None and response.status == 403
            expect(bob.locator("#forbidden")).to_be_visible()
            api = bob.request.get(f"{server.url}/api/v1/admin/users")
            assert api.status == 403 and api.json()["status"] == 403

            # each user's page shows only their own requests
            bob.goto(f"{server.url}/usage")
            expect(bob.locator("#recent tbody tr")).to_have_count(1)
            expect(bob.locator("#recent")).to_contain_text("Bob asks about coffee")
            expect(bob.locator("#recent")).not_to_contain_text("Alice")
            bob.wait_for_function("window.llmtallyCharts.monthly !== undefined", timeout=10_000)
            assert canvas_inked(bob, "#monthly-chart")
            bob.screenshot(path=str(ARTIFACTS / "usage.png"), full_page=True)
            alice.goto(f"{server.url}/usage")
            expect(alice.locator("#recent")).to_contain_text("Alice asks about tea")
            expect(alice.locator("#recent")).not_to_contain_text("coffee")
        except Exception:
            alice.screenshot(path=str(ARTIFACTS / "admin-failure.png"), full_page=True)
            bob.screenshot(path=str(ARTIFACTS / "usage-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    users = {r["user_profile_id"] for r in db.fetch_all("select user_profile_id from request_logs")}
    assert users == {"password_alice", "password_bob"}
