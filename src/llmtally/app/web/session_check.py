"""An ASGI layer that ends revoked and expired login sessions everywhere: our routes, Chainlit's, the chat socket.

A request carrying a session JWT (the chat's cookie, or ``Authorization: Bearer`` with a JWT) whose
server-side session has ended (:func:`llmtally.app.web.auth.session_active`) is answered as a request
without it: the token is taken out of the request, and the response deletes the cookie. Chainlit's
routes then see no login, and ``POST /auth/jwt`` cannot renew it. The chat socket's handshake is
refused (403), a long-polling request is refused with 401, and an open websocket is closed (1008) on
the first message it receives after the session ended. A session that is still active names the
acting user (:data:`ACTING_USER`) for the chat's data layer.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Literal

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmtally.api_tokens import PREFIX
from llmtally.app.web.auth import CHECKED, Session, cookie_token, is_session_cookie, session_active, session_of
from llmtally.app.web.guard import SOCKET_PATH, refuse
from llmtally.app.web.state import WebState
from llmtally.errors import LlmtallyError

log = logging.getLogger("llmtally.app")

ACTING_USER: contextvars.ContextVar[str | None] = contextvars.ContextVar("llmtally_acting_user", default=None)
ENDED = "the session has ended: log in again"


def _cookies(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for name, value in raw:
        if name.lower() == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
    return cookies


def _bearer_jwt(raw: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in raw:
        if name.lower() == b"authorization":
            scheme, _, credential = value.decode("latin-1").partition(" ")
            credential = credential.strip()
            if scheme.lower() == "bearer" and credential and not credential.startswith(PREFIX):
                return credential
    return None


def _without_session(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers without the session: no session cookie (others kept) and no bearer JWT."""
    kept: list[tuple[bytes, bytes]] = []
    for name, value in raw:
        lower = name.lower()
        if lower == b"authorization" and _bearer_jwt([(name, value)]) is not None:
            continue
        if lower == b"cookie":
            parts = [p for p in value.decode("latin-1").split(";") if p.strip()]
            rest = [p for p in parts if not is_session_cookie(p.split("=", 1)[0].strip())]
            if rest:
                kept.append((name, ";".join(rest).strip().encode("latin-1")))
            continue
        kept.append((name, value))
    return kept


def _delete_cookies(names: list[str]) -> list[tuple[bytes, bytes]]:
    return [(b"set-cookie", f"{name}=; Max-Age=0; Path=/; HttpOnly; SameSite=lax".encode("latin-1")) for name in names]


class SessionCheck:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, state: WebState) -> None:
        self.app = app
        self.state = state

    async def _verdict(self, token: str) -> tuple[Literal["unverified", "active", "ended"], Session | None]:
        """``unverified``: a JWT that does not verify (expired, forged), which the routes refuse on their own."""
        session = session_of(token)
        if session is None:
            return "unverified", None
        try:
            active = await asyncio.to_thread(session_active, self.state, session)
        except LlmtallyError as exc:
            log.error("session check: %s", exc)
            active = False  # fail closed
        return ("active" if active else "ended"), session

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw: list[tuple[bytes, bytes]] = scope["headers"]
        cookies = _cookies(raw)
        token = _bearer_jwt(raw) or cookie_token(cookies)
        if token is None:
            await self.app(scope, receive, send)
            return
        verdict, session = await self._verdict(token)
        if verdict == "ended":
            await self._ended(scope, receive, send, [name for name in cookies if is_session_cookie(name)])
            return
        if session is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})[CHECKED] = session.session_id
        reset = ACTING_USER.set(session.user_id)
        try:
            if scope["type"] == "websocket":
                await self._watched_socket(scope, receive, send, token)
            else:
                await self.app(scope, receive, send)
        finally:
            ACTING_USER.reset(reset)

    async def _ended(self, scope: Scope, receive: Receive, send: Send, cookie_names: list[str]) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
            return
        deletions = _delete_cookies(cookie_names)
        if scope["path"].startswith(SOCKET_PATH):
            await refuse(send, 401, ENDED, tuple(deletions))
            return

        async def send_deleting(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *deletions]}
            await send(message)

        await self.app({**scope, "headers": _without_session(scope["headers"])}, receive, send_deleting)

    async def _watched_socket(self, scope: Scope, receive: Receive, send: Send, token: str) -> None:
        """The chat socket, closed on the first message received after its session ended."""
        closed = False

        async def checked_receive() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and not closed:
                verdict, _ = await self._verdict(token)
                if verdict != "active":  # revoked, or expired while the socket was open
                    closed = True
                    log.info("chat socket closed: its login session has ended")
                    await send({"type": "websocket.close", "code": 1008, "reason": ENDED})
                    return {"type": "websocket.disconnect", "code": 1008}
            return message

        async def guarded_send(message: Message) -> None:
            if not closed:  # after our close the app may still try to send: nothing goes out
                await send(message)

        await self.app(scope, checked_receive, guarded_send)
