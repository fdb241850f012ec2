"""The chat as a person sees it in Chromium, at desktop and phone widths: llmtally's login page, no
request to another host, and a usage panel that never covers the chat on a phone."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.browser import ARTIFACTS, FLAGS, send_message
from tests.support.server import Server

WIDTHS = {"desktop": (1400, 1000), "phone": (390, 844)}


def open_page(playwright: Any, chromium: str, width: str) -> tuple[Any, list[str]]:
    """A fresh browser page and the list of every URL it requests."""
    browser = playwright.chromium.launch(executable_path=chromium, args=FLAGS)
    w, h = WIDTHS[width]
    page = browser.new_context(viewport={"width": w, "height": h}).new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    return page, requested


def foreign(requested: list[str], server: Server) -> list[str]:
    own = urlsplit(server.url).netloc
    return [url for url in requested if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own]


def sign_in(page: Any, user: str, password: str) -> None:
    page.locator("input#email").fill(user)
    page.locator("input[type=password]").fill(password)
    page.get_by_role("button", name="Sign In").click()


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_login_page_is_llmtally_s_and_says_why_a_login_failed(
    server: Server, chromium_path: str, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        page, requested = open_page(p, chromium_path, width)
        try:
            page.goto(f"{server.url}/login")
            expect(page.get_by_text("Sign in to llmtally")).to_be_visible(timeout=30_000)
            expect(page.locator("label[for=email]")).to_have_text("User name")
            sign_in(page, "alice", "not-her-password")
            expect(page.get_by_text("Sign in failed. Check the user name and password.")).to_be_visible(timeout=15_000)
            expect(page.get_by_text("Unable to sign in")).to_have_count(0)
            expect(page.get_by_text("credentialssignin", exact=False)).to_have_count(0)
            page.screenshot(path=str(ARTIFACTS / f"login-refused-{width}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            assert foreign(requested, server) == []
        finally:
            page.context.browser.close()


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_chat_loads_nothing_from_other_hosts_and_the_panel_stays_closed_on_a_phone(
    server: Server, chromium_path: str, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        page, requested = open_page(p, chromium_path, width)
        try:
            page.goto(f"{server.url}/login")
            sign_in(page, "alice", "alice-password")
            composer = page.locator("#chat-input")
            expect(composer).to_be_visible(timeout=30_000)
            # the chat's session has started once its commands are listed
            expect(page.locator("#command-usage")).to_be_visible(timeout=30_000)
            send_message(page, "Hello from a small screen" if width == "phone" else "Hello from a desk")
            expect(page.get_by_text("offline demo model", exact=False).first).to_be_visible(timeout=30_000)
            for theme in ("light", "dark"):  # the logo above the chat is llmtally's, not Chainlit's
                assert ">llm<tspan" in page.request.get(f"{server.url}/logo?theme={theme}").text()
            panel = page.locator("#side-view-content")
            if width == "phone":
                # /usage is answered after the reply's handler ended, panel refresh included
                composer.fill("/usage")
                page.keyboard.press("Enter")  # picks the command
                composer.fill("this month")
                page.locator("#chat-submit").click()
                expect(page.get_by_text("1 request (", exact=False).first).to_be_visible(timeout=30_000)
                expect(panel).to_have_count(0)  # neither on load nor after the reply
                assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
            else:
                expect(panel).to_contain_text("1 request", timeout=15_000)  # refreshed with the reply
            page.screenshot(path=str(ARTIFACTS / f"chat-{width}.png"), full_page=True)
            assert foreign(requested, server) == []
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"chat-failure-{width}.png"), full_page=True)
            raise
        finally:
            page.context.browser.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_pages_and_the_chat_follow_the_system_s_light_or_dark_setting(
    server: Server, chromium_path: str, scheme: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme).new_page()
            page.goto(f"{server.url}/login")
            sign_in(page, "alice", "alice-password")
            expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
            # Chainlit's own default is dark; the chat follows the system instead
            expect(page.locator("html")).to_have_class(scheme, timeout=10_000)
            page.goto(f"{server.url}/usage")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == {"light": "rgb(248, 250, 252)", "dark": "rgb(15, 20, 27)"}[scheme]
            page.screenshot(path=str(ARTIFACTS / f"usage-{scheme}.png"), full_page=True)
        finally:
            browser.close()
