"""With no LLMTALLY_ADMINS, the generated local login of `llmtally up` opens the dashboard; other logins do not."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.server import login_cookie, run_server


def test_the_generated_local_login_administers_when_no_admins_are_configured(db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with run_server(db_url, home, env={"LLMTALLY_USERS": ""}) as server:
        password = (home / "app" / "local-password").read_text().strip()
        banner = server.output()
        for page in ("/ (chat)", "/usage (your usage)", "/admin (dashboard)"):
            assert f"{server.url}{page}" in banner, banner
        assert f"kept in {(home / 'app' / 'local-password').resolve()};" in banner, banner
        cookie = login_cookie(server, "admin", password)
        response = httpx.get(f"{server.url}/admin", headers={"Cookie": cookie}, timeout=10)
        assert response.status_code == 200, response.text[:300]


def test_configured_logins_are_not_admins_by_default(db_url: str, tmp_path: Path) -> None:
    with run_server(db_url, tmp_path / "home") as server:  # LLMTALLY_USERS=alice,bob and no LLMTALLY_ADMINS
        cookie = login_cookie(server, "alice", "alice-password")
        assert httpx.get(f"{server.url}/admin", headers={"Cookie": cookie}, timeout=10).status_code == 403
