"""OAuth login end to end through a real OpenID Connect provider (the npm package oidc-provider)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from llmtally.db import Database
from tests.support.server import ChatClient, Server, free_port, run_server

OIDC_DIR = Path(__file__).with_name("oidc")


@dataclass
class Provider:
    url: str
    client_id: str
    client_secret: str


def _require_node_provider() -> None:
    ready = shutil.which("node") and (OIDC_DIR / "node_modules" / "oidc-provider").is_dir()
    if not ready:
        if os.environ.get("CI"):
            pytest.fail("node and tests/e2e/oidc/node_modules are required in CI (.ci/run runs npm ci)")
        pytest.skip("OIDC provider not installed: run `npm ci` in tests/e2e/oidc")


@pytest.fixture
def oauth_server(db_url: str, tmp_path: Path) -> Iterator[tuple[Server, Provider]]:
    with running_oauth_server(db_url, tmp_path) as running:
        yield running


@contextmanager
def running_oauth_server(
    db_url: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[Server, Provider]]:
    _require_node_provider()
    app_port, idp_port = free_port(), free_port()
    provider = Provider(f"http://127.0.0.1:{idp_port}", "llmtally-test", "test-client-secret")
    redirect = f"http://127.0.0.1:{app_port}/auth/oauth/generic/callback"
    with (tmp_path / "oidc-provider.log").open("w") as log:
        process = subprocess.Popen(
            ["node", "provider.mjs", str(idp_port), provider.client_id, provider.client_secret, redirect],
            cwd=OIDC_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{provider.url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "the OIDC provider did not start"
            time.sleep(0.2)
        settings = {
            "OAUTH_GENERIC_CLIENT_ID": provider.client_id,
            "OAUTH_GENERIC_CLIENT_SECRET": provider.client_secret,
            "OAUTH_GENERIC_AUTH_URL": f"{provider.url}/auth",
            "OAUTH_GENERIC_TOKEN_URL": f"{provider.url}/token",
            "OAUTH_GENERIC_USER_INFO_URL": f"{provider.url}/me",
            "OAUTH_GENERIC_SCOPES": "openid email profile",
            **(env or {}),
        }
        with run_server(db_url, tmp_path / "home", env=settings, port=app_port) as server:
            yield server, provider
    finally:
        process.terminate()
        process.wait(timeout=10)


def _submit(client: httpx.Client, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert action, page.text[:500]
    return client.post(urljoin(str(page.url), action.group(1)), data=fields)


def oauth_login(server: Server, login: str) -> str:
    """Log in through the provider's real login and consent pages; return the app's cookie header."""
    with httpx.Client(follow_redirects=True, timeout=15) as client:
        page = client.get(f"{server.url}/auth/oauth/generic")
        assert 'name="login"' in page.text, page.text[:500]
        page = _submit(client, page, {"prompt": "login", "login": login, "password": "anything"})
        if 'value="consent"' in page.text:
            page = _submit(client, page, {"prompt": "consent"})
        assert page.url.host == "127.0.0.1" and page.url.port == int(server.url.rsplit(":", 1)[1]), page.url
        cookies = {c.name: c.value for c in client.cookies.jar if c.name.startswith("access_token")}
    assert cookies, "the app set no session cookie after the OAuth callback"
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


async def test_oauth_login_chat_is_linked_to_the_provider_subject(
    oauth_server: tuple[Server, Provider], db: Database
) -> None:
    server, _ = oauth_server
    assert "generic" in httpx.get(f"{server.url}/auth/config").json()["oauthProviders"]
    cookie = oauth_login(server, "subject-4242")
    client = ChatClient(server, cookie)
    await client.connect()
    try:
        _, text = await client.reply("Hello through OAuth")
        assert "offline demo model" in text
    finally:
        await client.close()
    [row] = db.fetch_all("select user_profile_id, status from request_logs")
    assert row == {"user_profile_id": "generic_subject-4242", "status": "success"}
    profile = db.fetch_one(
        "select email, full_name, provider from user_profiles where user_id = 'generic_subject-4242'"
    )
    assert profile == {
        "email": "subject-4242@example.test",
        "full_name": "Test user subject-4242",
        "provider": "generic",
    }


def test_an_unverified_email_naming_an_administrator_opens_no_admin_page(db_url: str, tmp_path: Path) -> None:
    with running_oauth_server(db_url, tmp_path, {"LLMTALLY_ADMINS": "root@example.test"}) as (server, _):
        impostor = oauth_login(server, "unverified-root")  # the provider says root@example.test, not verified
        assert httpx.get(f"{server.url}/admin", headers={"Cookie": impostor}, timeout=10).status_code == 403
        export = httpx.get(f"{server.url}/api/v1/admin/export", headers={"Cookie": impostor}, timeout=10)
        assert export.status_code == 403
        root = oauth_login(server, "root")  # the same e-mail, verified by the provider
        assert httpx.get(f"{server.url}/admin", headers={"Cookie": root}, timeout=10).status_code == 200
        # Chainlit builds its OAuth error redirect from the Host header; it leaves on the public URL
        error = httpx.get(
            f"{server.url}/auth/oauth/generic/callback",
            params={"error": "access_denied"},
            headers={"Host": "evil.example"},
            timeout=10,
        )
        assert error.status_code == 302 and error.headers["location"].startswith(f"{server.url}/login?")
