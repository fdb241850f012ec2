"""Who is asking: the chat's login cookie (Chainlit's signed JWT) or an API token.

The cookie is verified as Chainlit verifies it (HS256 with ``CHAINLIT_AUTH_SECRET``), so the
dashboard, the user's page and the API accept exactly the sessions the chat accepts. API tokens
(``Authorization: Bearer lt_...``) are checked against their stored SHA-256. Tokens are never read
from a URL and never logged.

Administrators are named by user id; an e-mail in LLMTALLY_ADMINS matches only the e-mail that the
login's provider verified, which the chat puts in the signed session (``metadata.verified_email``).
An API token carries no login, so a token is an administrator's only when its user id is listed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from llmtally.app.web.state import WebState
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


@dataclass(frozen=True)
class Session:
    user_id: str
    verified_email: str | None


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
    email = metadata.get("verified_email") if isinstance(metadata, dict) else None
    return Session(identifier, email if isinstance(email, str) and email else None)


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
    session: Session | None
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
    return Viewer(
        user_id=session.user_id, is_admin=state.is_admin(session.user_id, session.verified_email), via="cookie"
    )
