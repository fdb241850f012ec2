"""The real server refuses what comes from another origin, brute force, uploads and oversized bodies.

One server for the module: each test uses its own user names or origins, so none sees another's state.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import socketio

from tests.support.server import Server, login_cookie, run_server

FOREIGN = "http://127.0.0.1:1"  # another port of the same host: another origin


@pytest.fixture(scope="module")
def guarded(cluster: object, template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    name = cluster.create_database(template=template)  # type: ignore[attr-defined]
    users = "alice:alice-password,bob:bob-password,carol:carol-password"
    try:
        with run_server(
            cluster.url(name),  # type: ignore[attr-defined]
            tmp_path_factory.mktemp("guarded") / "home",
            env={"LLMTALLY_USERS": users},
        ) as server:
            yield server
    finally:
        cluster.drop_database(name)  # type: ignore[attr-defined]


async def socket_connects(server: Server, cookie: str, origin: str) -> bool:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(
            server.url,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers={"Cookie": cookie, "Origin": origin},
            auth={
                "clientType": "webapp",
                "sessionId": str(uuid.uuid4()),
                "threadId": None,
                "userEnv": "{}",
                "chatProfile": None,
            },
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError:
        return False
    else:
        await client.disconnect()
        return True
    finally:
        if client.eio.http is not None and not client.eio.http.closed:
            await client.eio.http.close()  # a refused handshake leaves the client's HTTP session open


async def test_the_chat_socket_refuses_a_foreign_origin(guarded: Server) -> None:
    cookie = login_cookie(guarded, "alice", "alice-password")
    assert not await socket_connects(guarded, cookie, FOREIGN)
    assert not await socket_connects(guarded, cookie, "null")
    assert await socket_connects(guarded, cookie, guarded.url)
    polling = httpx.get(
        f"{guarded.url}/ws/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        headers={"Cookie": cookie, "Origin": FOREIGN},
    )
    assert polling.status_code == 403


def test_login_from_another_origin_is_refused(guarded: Server) -> None:
    form = {"username": "bob", "password": "bob-password"}
    for headers in ({"Origin": FOREIGN}, {"Referer": f"{FOREIGN}/attack.html"}, {"Origin": "null"}):
        refused = httpx.post(f"{guarded.url}/login", data=form, headers=headers)
        assert refused.status_code == 403, headers
        assert "cross-origin" in refused.json()["error"] and not refused.cookies
    own = httpx.post(f"{guarded.url}/login", data=form, headers={"Origin": guarded.url})
    assert own.status_code == 200 and own.cookies
    cookie = "; ".join(f"{k}={v}" for k, v in own.cookies.items())
    renew = httpx.post(f"{guarded.url}/auth/jwt", headers={"Cookie": cookie, "Origin": FOREIGN})
    assert renew.status_code == 403


def test_repeated_failed_logins_are_refused_with_retry_after(guarded: Server) -> None:
    form = {"username": "carol", "password": "wrong"}
    answers = [httpx.post(f"{guarded.url}/login", data=form).status_code for _ in range(10)]
    assert answers == [401] * 10
    limited = httpx.post(f"{guarded.url}/login", data={"username": "carol", "password": "carol-password"})
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 300
    assert "too many failed logins" in limited.json()["error"]


def test_uploads_and_oversized_bodies_are_refused_before_reading(guarded: Server) -> None:
    cookie = login_cookie(guarded, "alice", "alice-password")
    upload = httpx.post(
        f"{guarded.url}/project/file",
        params={"session_id": "x"},
        headers={"Cookie": cookie},
        files={"file": ("big.txt", b"x" * (8 * 1024 * 1024), "text/plain")},
        timeout=30,
    )
    assert upload.status_code == 403 and "no file uploads" in upload.json()["error"]
    big = httpx.put(
        f"{guarded.url}/project/thread", headers={"Cookie": cookie}, content=b"{" + b" " * (2 * 1024 * 1024) + b"}"
    )
    assert big.status_code == 413 and "larger than" in big.json()["error"]


def test_security_headers(guarded: Server) -> None:
    cookie = login_cookie(guarded, "alice", "alice-password")
    for path in ("/", "/login", "/usage", "/api/v1/usage/me"):
        headers = httpx.get(f"{guarded.url}{path}", headers={"Cookie": cookie}).headers
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
    assert httpx.get(f"{guarded.url}/api/v1/usage/me", headers={"Cookie": cookie}).headers["cache-control"] == (
        "no-store"
    )
