"""Who is asking: the chat's login cookie (Chainlit's signed JWT) or an API token.

The cookie is verified with Chainlit's own helpers and secret (``CHAINLIT_AUTH_SECRET``), so the
dashboard, the user's page and the API accept exactly the sessions the chat accepts. API tokens
(``Authorization: Bearer lt_...``) are checked against their stored SHA-256. Tokens are never read
from a URL and never logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from llmtally.app.web.state import WebState
from llmtally.db.queries import query
from llmtally.tokens import PREFIX, token_user

log = logging.getLogger("llmtally.app")


@dataclass(frozen=True)
class Viewer:
    user_id: str
    is_admin: bool
    via: Literal["cookie", "token"]


class NotAuthenticated(Exception):
    """No valid cookie or token; ``reason`` says which, for the 401 message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _session_user(token: str) -> str | None:
    """The user id in a Chainlit session JWT, or None when it does not verify."""
    from chainlit.auth.jwt import decode_jwt  # Chainlit reads its configuration at import

    try:
        return str(decode_jwt(token).identifier)
    except Exception:  # expired, forged, or signed with another secret: all simply not logged in
        return None


def _cookie_token(request: Request) -> str | None:
    # Chainlit's cookie name (its default unless CHAINLIT_AUTH_COOKIE_NAME is set; long tokens are split
    # into name_0, name_1, ...). Checked first so requests without it never import Chainlit.
    name = os.environ.get("CHAINLIT_AUTH_COOKIE_NAME", "access_token")
    if not any(cookie.startswith(name) for cookie in request.cookies):
        return None
    from chainlit.auth.cookie import get_token_from_cookies

    return get_token_from_cookies(dict(request.cookies))


def identify(state: WebState, request: Request) -> Viewer:
    """The viewer of a request, or NotAuthenticated."""
    header = request.headers.get("authorization")
    user_id: str | None
    if header is not None:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
        if credential.startswith(PREFIX):
            user_id, via = token_user(state.db, credential), "token"
            if user_id is None:
                raise NotAuthenticated("the API token is unknown, revoked or expired")
        else:
            user_id, via = _session_user(credential), "cookie"
            if user_id is None:
                raise NotAuthenticated("the bearer token is not a valid session or API token")
    else:
        session = _cookie_token(request)
        if session is None:
            raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
        user_id, via = _session_user(session), "cookie"
        if user_id is None:
            raise NotAuthenticated("the session has expired: log in again")
    return Viewer(user_id=user_id, is_admin=_is_admin(state, user_id), via=via)  # type: ignore[arg-type]


def _is_admin(state: WebState, user_id: str) -> bool:
    if not state.admins:
        return False
    if user_id in state.admins:
        return True
    if not any("@" in a for a in state.admins):
        return False
    rows = state.db.fetch_all(query("user_email"), {"user_id": user_id})
    return state.is_admin(user_id, rows[0]["email"] if rows else None)
