"""The web side of the app besides the chat: JSON API, dashboard and usage pages, /metrics.

:func:`install_web` registers everything on the FastAPI app; it must run before Chainlit is mounted
at "/", whose catch-all route would otherwise answer these paths.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from llmtally import metrics
from llmtally.app.web.api import build_api
from llmtally.app.web.explorer import install_explorer
from llmtally.app.web.guard import GuardPolicy, RequestGuard
from llmtally.app.web.login_limit import LoginLimit, LoginLimits
from llmtally.app.web.manage import install_manage
from llmtally.app.web.pages import install_pages
from llmtally.app.web.state import WebState

__all__ = ["GuardPolicy", "LoginLimits", "WebState", "install_guards", "install_web", "metrics_allowed"]


def _local(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_allowed(state: WebState, request: Request) -> bool:
    """With LLMTALLY_METRICS_TOKEN set: that bearer token. Unset: local clients, and only when the server
    listens on loopback (``state.metrics_local``); otherwise refused."""
    if state.metrics_token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), state.metrics_token.encode())
    return state.metrics_local and _local(request.client.host if request.client else None)


def install_web(app: FastAPI, state: WebState) -> None:
    @app.get("/metrics", include_in_schema=False)
    def prometheus(request: Request) -> Response:
        if not metrics_allowed(state, request):
            return JSONResponse(
                {"error": "metrics need the bearer token LLMTALLY_METRICS_TOKEN (or a local client when unset)"},
                status_code=401 if state.metrics_token else 403,
            )
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE)

    install_pages(app, state)
    install_explorer(app, state)
    install_manage(app, state)
    app.mount("/api/v1", build_api(state), name="api")


def install_guards(app: FastAPI, policy: GuardPolicy, limits: LoginLimits | None = None) -> None:
    """The ASGI layers in front of every route, Chainlit's included: the request guard outermost (origin,
    uploads, body size, headers), then the login limit."""
    app.add_middleware(LoginLimit, limits=limits or LoginLimits())
    app.add_middleware(RequestGuard, policy=policy)
