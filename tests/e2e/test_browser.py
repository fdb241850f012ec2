"""The chat in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

from llmtally.db import Database
from tests.support.browser import ARTIFACTS, FLAGS
from tests.support.server import Server


def test_login_chat_and_usage_panel_in_chromium(server: Server, db: Database, chromium_path: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(server.url)
            page.get_by_label("Email").or_(page.locator("input#email")).first.fill("alice")
            page.locator("input[type=password]").fill("alice-password")
            page.get_by_role("button", name="Sign In").or_(page.get_by_role("button", name="Continue")).first.click()
            composer = page.locator("#chat-input")
            expect(composer).to_be_visible(timeout=30_000)
            expect(page.get_by_text("No requests yet.")).to_be_visible(timeout=30_000)
            composer.fill("Hello from the browser")
            page.keyboard.press("Enter")
            expect(page.get_by_text("This is the offline demo model", exact=False)).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Type /usage to see", exact=False)).to_be_visible(timeout=30_000)
            expect(page.get_by_text("1 requests", exact=False)).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "chat-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    [row] = db.fetch_all("select user_profile_id, status, stream from request_logs")
    assert row == {"user_profile_id": "password_alice", "status": "success", "stream": True}
