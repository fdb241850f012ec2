"""Who is asking: the chat's login cookie (Chainlit's signed JWT) or an API token.

The cookie is verified as Chainlit verifies it (HS256 with ``CHAINLIT_AUTH_SECRET``), so the
dashboard, the user's page and the API accept exactly the sessions the chat accepts. API tokens
(``Authorization: Bearer lt_...``) are checked against their stored SHA-256. Tokens are never read
from a URL and never logged.

Administrators are named by user id; an e-mail in LLMTALLY_ADMINS matches only the e-mail that the
login's provider verified, which the chat puts in the signed session (``metadata.verified_email``).
An API token carries no login, so a token is an administrator's only when its user id is listed.

Forms of the pages carry a CSRF token bound to the login session (:attr:`Viewer.csrf_token`), on top
of the origin check every state-changing request gets (``origin.py``).

A session JWT counts only while its server-side session (``metadata.session``, table ``web_sessions``)
is active: logout, ``llmtally users revoke-sessions`` and the removal of a password login end it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from llmtally.api_tokens import PREFIX, token_user
from llmtally.app.web.state import WebState
from llmtally.web_sessions import active_session

log = logging.getLogger("llmtally.app")


@dataclass(frozen=True)
class Viewer:
    user_id: str
    is_admin: bool
    # cookie: the browser's session cookie, sent with any request to the app (forms need a CSRF token);
    # token: an API token; bearer: a session JWT in the Authorization header (scripts, tests)
    via: Literal["cookie", "token", "bearer"]
    session_id: str | None = None

    @property
    def csrf_token(self) -> str:
        """The token a form of the pages carries: bound to the login session, so a page of another site
        cannot know it. Empty for a viewer with no session cookie (nothing ambient to forge)."""
        secret = os.environ.get("CHAINLIT_AUTH_SECRET", "")
        if self.via != "cookie" or self.session_id is None or not secret:
            return ""
        return hmac.new(secret.encode(), f"llmtally-csrf:{self.session_id}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, given: str | None) -> bool:
        """Whether a form's token is this viewer's: always for API tokens and bearer sessions, which a
        browser never sends by itself."""
        if self.via != "cookie":
            return True
        expected = self.csrf_token
        return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


class NotAuthenticated(Exception):
    """No valid cookie or token; ``reason`` says which, for the 401 message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Session:
    user_id: str
    verified_email: str | None
    session_id: str | None = None  # the row in web_sessions; None in a JWT no login of this app made
    provider: str | None = None


def session_of(token: str) -> Session | None:
    """The user in a Chainlit session JWT, or None when it does not verify."""
    import jwt

    secret = os.environ.get("CHAINLIT_AUTH_SECRET")
    if not secret:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
    except jwt.PyJWTError:  # expired, forged, or signed with another secret: all simply not logged in
        return None
    identifier = claims.get("identifier")
    if not isinstance(identifier, str) or not identifier:
        return None
    metadata = claims.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}

    def text(key: str) -> str | None:
        value = metadata.get(key)
        return value if isinstance(value, str) and value else None

    return Session(identifier, text("verified_email"), session_id=text("session"), provider=text("provider"))


def session_active(state: WebState, session: Session) -> bool:
    """Whether a verified session JWT still counts: its server-side session is the JWT's user's, neither
    revoked nor expired, and a password login is still configured."""
    if session.session_id is None:
        return False
    removed = state.password_users is not None and session.user_id not in state.password_users
    if session.provider == "password" and removed:
        return False
    return active_session(state.db, session.session_id, session.user_id) is not None


CHECKED = "llmtally_checked_session"  # scope["state"] key: the session id the ASGI layer found active


def cookie_name() -> str:
    """Chainlit's session cookie name (its default unless CHAINLIT_AUTH_COOKIE_NAME is set)."""
    return os.environ.get("CHAINLIT_AUTH_COOKIE_NAME", "access_token")


def is_session_cookie(name: str) -> bool:
    """The session cookie, or one of the chunks ``name_0``, ``name_1``, ... a long token is split into."""
    base = cookie_name()
    return name == base or (name.startswith(base + "_") and name[len(base) + 1 :].isdigit())


def cookie_token(cookies: Mapping[str, str]) -> str | None:
    """The session token in a request's cookies, read as Chainlit reads it (whole, else its chunks in order)."""
    base = cookie_name()
    if cookies.get(base):
        return cookies[base]
    chunks: list[str] = []
    while f"{base}_{len(chunks)}" in cookies:
        chunks.append(cookies[f"{base}_{len(chunks)}"])
    return "".join(chunks) or None


def _cookie_token(request: Request) -> str | None:
    return cookie_token(request.cookies)


def identify(state: WebState, request: Request) -> Viewer:
    """The viewer of a request, or NotAuthenticated."""
    header = request.headers.get("authorization")
    session: Session | None
    via: Literal["cookie", "bearer"] = "bearer" if header is not None else "cookie"
    if header is not None:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
        if credential.startswith(PREFIX):
            user_id = token_user(state.db, credential)
            if user_id is None:
                raise NotAuthenticated("the API token is unknown, revoked or expired")
            return Viewer(user_id=user_id, is_admin=state.is_admin(user_id, None), via="token")
        session = session_of(credential)
        if session is None:
            raise NotAuthenticated("the bearer token is not a valid session or API token")
    else:
        cookie = _cookie_token(request)
        if cookie is None:
            raise NotAuthenticated("log in, or send an API token as 'Authorization: Bearer <token>'")
        session = session_of(cookie)
        if session is None:
            raise NotAuthenticated("the session has expired: log in again")
    checked = request.scope.get("state", {}).get(CHECKED)
    already = session.session_id is not None and checked == session.session_id  # by the ASGI layer
    if not already and not session_active(state, session):
        raise NotAuthenticated("the session has ended: log in again")
    return Viewer(
        user_id=session.user_id,
        is_admin=state.is_admin(session.user_id, session.verified_email),
        via=via,
        session_id=session.session_id,
    )
