"""The chat in a real browser (Debian's Chromium driven by Playwright), and what a page of another origin cannot do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from llmtally.db import Database
from tests.support.browser import ARTIFACTS, FLAGS, send_message
from tests.support.server import Server, free_port, login_cookie


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
            send_message(page, "Hello from the browser")
            expect(page.get_by_text("This is the offline demo model", exact=False)).to_be_visible(timeout=30_000)
            expect(page.get_by_text("Type /usage to see", exact=False)).to_be_visible(timeout=30_000)
            expect(page.get_by_text("1 request (", exact=False)).to_be_visible(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "chat-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    [row] = db.fetch_all("select user_profile_id, status, stream from request_logs")
    assert row == {"user_profile_id": "password_alice", "status": "success", "stream": True}


@contextmanager
def foreign_site(pages: dict[str, str]) -> Iterator[str]:
    """Another origin (another port of the same host, so the same site for cookies) serving these pages."""

    class Pages(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path.split("?")[0], "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    site = ThreadingHTTPServer(("127.0.0.1", free_port()), Pages)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}"
    finally:
        site.shutdown()
        site.server_close()


OPEN_SOCKET = """async (url) => await new Promise((done) => {
    const socket = new WebSocket(url);
    socket.onopen = () => { socket.close(); done("open"); };
    socket.onerror = () => done("refused");
    setTimeout(() => done("timeout"), 10000);
})"""


def test_a_foreign_page_cannot_log_the_browser_in_or_open_the_chat_socket(server: Server, chromium_path: str) -> None:
    from playwright.sync_api import sync_playwright

    login_csrf = f"""<form id="f" method="POST" action="{server.url}/login">
        <input name="username" value="bob"><input name="password" value="bob-password"></form>
        <script>document.getElementById("f").submit()</script>"""
    socket_url = server.url.replace("http://", "ws://") + "/ws/socket.io/?EIO=4&transport=websocket"
    pages = {"/login-csrf.html": login_csrf, "/chat.html": "<p>elsewhere</p>"}
    with foreign_site(pages) as foreign, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=FLAGS)
        try:
            victim = browser.new_context()
            page = victim.new_page()
            page.goto(f"{foreign}/login-csrf.html")
            page.wait_for_load_state("load")
            seen = {
                "login answer": "cross-origin request refused" in page.content(),
                "logged in": any(c["name"].startswith("access_token") for c in victim.cookies(server.url)),
            }

            logged_in = browser.new_context()
            logged_in.add_cookies(
                [{"name": k, "value": v, "url": server.url} for k, v in _cookie_pairs(server, "alice")]
            )
            page = logged_in.new_page()
            page.goto(f"{foreign}/chat.html")
            seen["foreign socket"] = page.evaluate(OPEN_SOCKET, socket_url)
            page.goto(f"{server.url}/healthz")  # a page of the app itself: the same socket opens
            seen["own socket"] = page.evaluate(OPEN_SOCKET, socket_url)
        finally:
            browser.close()
    assert seen == {"login answer": True, "logged in": False, "foreign socket": "refused", "own socket": "open"}


def _cookie_pairs(server: Server, user: str) -> list[tuple[str, str]]:
    cookie = login_cookie(server, user, f"{user}-password")
    return [tuple(part.strip().split("=", 1)) for part in cookie.split(";")]  # type: ignore[misc]
