"""The five-minute tour of docs/tour.md, walked in Chromium: each step is checked, then photographed.

The screenshots go to test-artifacts/tour/. With ``LLMTALLY_TOUR_IMAGES=docs/images/tour`` they are
also written there, which is how the tour's pictures are made (``python3 dev.py test
tests/e2e/test_tour.py`` with that variable): they show what the tests saw, never a hand-made image.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmtally.db import Database
from tests.support.browser import ARTIFACTS, FLAGS, send_message
from tests.support.server import Server, run_server
from tests.support.tour_seed import ALICE, seed_tour

ROOT = Path(__file__).resolve().parents[2]
# Read at import: the tests' own environment drops every LLMTALLY_ variable (tests/conftest.py).
IMAGES = os.environ.get("LLMTALLY_TOUR_IMAGES")


@pytest.fixture(scope="module")
def tour_server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(module_db_url, tmp_path_factory.mktemp("home"), env={"LLMTALLY_ADMINS": ALICE}) as running:
        yield running


def snap(page: Any, name: str) -> None:
    targets = [ARTIFACTS / "tour"]
    if IMAGES:
        targets.append(ROOT / IMAGES)
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=False)


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def test_the_tour(tour_server: Server, db_url: str, chromium_path: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    seed_tour(db_url)
    url = tour_server.url
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light").new_page()
            page.goto(f"{url}/login")
            expect(page.locator("label[for=email]")).to_have_text("User name", timeout=30_000)
            snap(page, "1-login")

            page.locator("input#email").fill("alice")
            page.locator("input[type=password]").fill("alice-password")
            page.get_by_role("button", name="Sign In").click()
            composer = page.locator("#chat-input")
            expect(composer).to_be_visible(timeout=30_000)
            expect(page.locator("#command-usage")).to_be_visible(timeout=30_000)
            send_message(page, "What does llmtally record?")
            expect(page.locator("#side-view-content")).to_contain_text("request", timeout=30_000)
            expect(page.get_by_text("offline demo model", exact=False).first).to_be_visible()
            snap(page, "2-chat")

            page.goto(f"{url}/usage")
            expect(page.locator("#recent tbody tr").first).to_be_visible()
            page.wait_for_function("window.llmtallyCharts.monthly !== undefined", timeout=10_000)
            snap(page, "3-usage")

            page.goto(f"{url}/admin")
            page.wait_for_function("window.llmtallyReady === true", timeout=30_000)
            expect(page.locator("#models tbody tr").first).to_be_visible()
            snap(page, "4-dashboard")

            page.goto(f"{url}/admin/requests")
            rows = page.locator("#requests tbody tr")
            expect(rows.first).to_be_visible()
            snap(page, "5-requests")

            with Database(db_url) as db:
                row = db.fetch_one("select id from request_logs where litellm_call_id = 'retried'")
            assert row is not None
            page.locator(f"#requests tr[data-id='{row['id']}'] a").first.click()
            expect(page.locator("#attempts tbody tr")).to_have_count(2)
            snap(page, "6-request")

            page.goto(f"{url}/admin/budgets")
            expect(page.locator("#budgets tbody tr", has_text="password_bob").locator(".bar.over")).to_be_visible()
            snap(page, "7-manage")

            page.goto(f"{url}/api/v1/docs")
            expect(page.locator(".opblock").first).to_be_visible(timeout=30_000)
            snap(page, "8-api-docs")

            phone = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark").new_page()
            phone.context.add_cookies(page.context.cookies())
            phone.goto(f"{url}/usage")
            expect(phone.locator("#recent tbody tr").first).to_be_visible()
            assert no_sideways_scroll(phone)
            snap(phone, "9-usage-phone-dark")
        finally:
            browser.close()
