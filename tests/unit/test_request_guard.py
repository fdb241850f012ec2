"""The request guard and the login limit in process, in front of a stand-in for Chainlit's routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.testclient import TestClient

from llmtally.app.web import GuardPolicy, install_guards
from llmtally.app.web.login_limit import FailureWindow, LoginLimits
from llmtally.app.web.origin import origin_of, same_origin

APP = "http://chat.example.com"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()

    @app.post("/login")
    def login(username: str = Form(), password: str = Form()) -> JSONResponse:
        return JSONResponse({}, status_code=200 if password == "right" else 401)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/auth/oauth/azure-ad-hybrid/callback")
    def callback() -> dict[str, bool]:
        return {"ok": True}

    install_guards(app, GuardPolicy(origin=APP, max_body_bytes=1000))
    with TestClient(app, base_url=APP) as test_client:
        yield test_client


def test_origin_of_and_same_origin() -> None:
    assert origin_of("HTTPS://Chat.Example.com:443/login?x") == "https://chat.example.com"
    assert origin_of("http://[::1]:8000/") == "http://[::1]:8000"
    assert origin_of("null") is None
    assert same_origin({"origin": "http://chat.example.com"}, APP)
    assert not same_origin({"origin": "http://chat.example.com:8080"}, APP)
    assert not same_origin({"referer": "https://chat.example.com/"}, APP)  # another scheme
    assert same_origin({}, APP)


def test_state_changing_requests_from_another_origin_are_refused(client: TestClient) -> None:
    assert client.post("/echo", content=b"x", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/echo", content=b"x", headers={"Referer": "http://evil.example/a"}).status_code == 403
    assert client.post("/echo", content=b"x", headers={"Origin": APP}).json() == {"bytes": 1}
    assert client.get("/echo", headers={"Origin": "http://evil.example"}).status_code == 405  # GET passes through
    oauth = client.post("/auth/oauth/azure-ad-hybrid/callback", headers={"Origin": "https://login.example"})
    assert oauth.status_code == 200


def test_bodies_over_the_limit_get_413_with_or_without_length(client: TestClient) -> None:
    assert client.post("/echo", content=b"x" * 1000).json() == {"bytes": 1000}
    assert client.post("/echo", content=b"x" * 1001).status_code == 413
    chunked = client.post("/echo", content=iter([b"x" * 600, b"x" * 600]))  # no Content-Length
    assert chunked.status_code == 413 and "larger than 1000 bytes" in chunked.json()["error"]
    assert client.post("/echo", content=iter([b"x" * 300, b"x" * 300])).json() == {"bytes": 600}


def test_failed_logins_per_name_then_429_and_success_clears() -> None:
    now = [0.0]
    window = FailureWindow(max_failures=3, window_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        assert window.retry_after("name:a") is None
        window.fail("name:a")
    assert window.retry_after("name:a") == 60
    now[0] = 59.5
    assert window.retry_after("name:a") == 1
    now[0] = 60.0
    assert window.retry_after("name:a") is None  # the first failure left the window
    window.fail("name:a")
    window.clear("name:a")
    assert window.retry_after("name:a") is None


def test_login_limit_counts_per_address_across_names() -> None:
    app = FastAPI()

    @app.post("/login")
    def login(username: str = Form(), password: str = Form()) -> JSONResponse:
        return JSONResponse({}, status_code=401)

    limits = LoginLimits(by_name=FailureWindow(max_failures=100), by_address=FailureWindow(max_failures=5))
    install_guards(app, GuardPolicy(origin=APP), limits)
    with TestClient(app, base_url=APP) as client:
        codes = [client.post("/login", data={"username": f"u{i}", "password": "x"}).status_code for i in range(6)]
        assert codes == [401] * 5 + [429]
        multipart = client.post("/login", files={"username": (None, "zed"), "password": (None, "x")})
        assert multipart.status_code == 429 and int(multipart.headers["retry-after"]) >= 1


def _redirecting_app(origin: str) -> FastAPI:
    """Redirects built the way Chainlit builds its OAuth error redirect (from the request's Host), and a cookie."""
    app = FastAPI()

    @app.get("/login", name="login")
    def login_page() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/auth/oauth/generic/callback")
    def callback(request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url_for("login")) + "?error=oauthSignin", status_code=302)

    @app.get("/auth/oauth/generic")
    def to_provider() -> RedirectResponse:
        return RedirectResponse("https://idp.example/authorize?client_id=x")

    @app.post("/set")
    def set_cookie() -> Response:
        response = JSONResponse({})
        response.set_cookie("access_token", "t", httponly=True, samesite="lax")
        return response

    install_guards(app, GuardPolicy(origin=origin))
    return app


def test_redirects_to_this_server_use_the_public_url_never_the_host_header() -> None:
    public = "https://chat.example.com"
    with TestClient(_redirecting_app(public), base_url="http://10.0.0.5:8000", follow_redirects=False) as client:
        forged = client.get("/auth/oauth/generic/callback", params={"error": "x"}, headers={"Host": "evil.example"})
        assert forged.headers["location"] == f"{public}/login?error=oauthSignin"
        plain = client.get("/auth/oauth/generic/callback", params={"error": "x"})
        assert plain.headers["location"] == f"{public}/login?error=oauthSignin"
        assert client.get("/auth/oauth/generic").headers["location"].startswith("https://idp.example/")


def test_cookies_are_secure_under_an_https_public_url_only() -> None:
    with TestClient(_redirecting_app("https://chat.example.com"), base_url="https://chat.example.com") as client:
        cookie = client.post("/set").headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
    with TestClient(_redirecting_app(APP), base_url=APP) as client:
        assert "Secure" not in client.post("/set").headers["set-cookie"]
