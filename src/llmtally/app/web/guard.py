"""An ASGI layer in front of the whole app (our routes and Chainlit's): what is refused before any route runs.

- Cross-origin requests (:mod:`llmtally.app.web.origin`): every state-changing HTTP request, every
  request to the chat's socket.io path and every websocket handshake whose browser names another
  origin is refused (403; a websocket handshake is closed with 1008, which the server answers with
  403). Chainlit builds its socket.io server with ``cors_allowed_origins=[]``, which turns the
  library's own check off, and its ``/login`` form has no CSRF token: this is their defence.
  Exception: ``POST /auth/oauth/.../callback``, which an identity provider posts from its own origin
  (protected by the OAuth state cookie instead).
- File uploads: the app takes none, so ``POST /project/file`` is refused before its body is read
  (Chainlit reads the whole body before it checks anything).
- Body size: a body larger than ``max_body_bytes`` is refused with 413, before the route reads it;
  a body without ``Content-Length`` is read here, up to the limit, and then handed on.
- Redirects and cookies: a redirect to this server (an absolute ``Location`` naming the request's
  ``Host``, as Chainlit builds its OAuth error redirect) is rewritten to the public URL, so a forged
  ``Host`` header never picks where a browser goes; under an https public URL every cookie is ``Secure``.
- Response headers: ``X-Frame-Options: DENY`` and ``Content-Security-Policy: frame-ancestors 'none'``
  (no framing, so no clickjacking), ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  same-origin``, and ``Cache-Control: no-store`` on the JSON API and the gateway (/v1).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmtally.app.web.origin import SAFE_METHODS, asgi_headers, origin_of, same_origin

SOCKET_PATH = "/ws/socket.io"
UPLOAD_PATHS = frozenset({"/project/file"})
MAX_BODY_BYTES = 1024 * 1024
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
NO_STORE_PREFIXES = ("/api/", "/v1/")


@dataclass(frozen=True)
class GuardPolicy:
    origin: str  # the app's public origin, e.g. https://chat.example.com
    max_body_bytes: int = MAX_BODY_BYTES
    uploads: bool = False


async def refuse(send: Send, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """A one-line JSON error, ``{"error": ..., "status": ...}``, like the API's."""
    body = json.dumps({"error": message, "status": status}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _oauth_callback(path: str) -> bool:
    return path.startswith("/auth/oauth/") and path.endswith("/callback")


def _own_location(location: str, request_host: str | None, public_origin: str) -> str:
    """``location`` on the public origin when it names the host the request was sent to."""
    parts = urlsplit(location)
    if not parts.scheme or not parts.netloc or request_host is None:
        return location  # relative: the browser resolves it against the public URL it is on
    if origin_of(location) == public_origin or parts.netloc.lower() != request_host.lower():
        return location  # already public, or another site (an identity provider's login page)
    rest = urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))
    return public_origin + rest


def _secure(cookie: bytes) -> bytes:
    return cookie if b"secure" in cookie.lower().replace(b" ", b"").split(b";") else cookie + b"; Secure"


def with_security_headers(
    message: Message, path: str, policy: GuardPolicy | None = None, request_host: str | None = None
) -> Message:
    """The response start ``message`` with the security headers it does not set itself, redirects to
    this server on the public URL and, under https, ``Secure`` cookies."""
    headers = list(message.get("headers", []))
    if policy is not None:
        https = policy.origin.startswith("https://")
        rewritten = []
        for name, value in headers:
            lower = name.lower()
            if lower == b"location":
                value = _own_location(value.decode("latin-1"), request_host, policy.origin).encode("latin-1")
            elif lower == b"set-cookie" and https:
                value = _secure(value)
            rewritten.append((name, value))
        headers = rewritten
    present = {name.lower() for name, _ in headers}
    headers.extend((name, value) for name, value in SECURITY_HEADERS if name not in present)
    if path.startswith(NO_STORE_PREFIXES):
        headers = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
        headers.append((b"cache-control", b"no-store"))
    return {**message, "headers": headers}


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands on ``body`` once, then waits on the real one (for the disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


class RequestGuard:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if not same_origin(asgi_headers(scope["headers"]), self.policy.origin):
                await send({"type": "websocket.close", "code": 1008})  # before accept: HTTP 403
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        headers = asgi_headers(scope["headers"])
        if not same_origin(headers, self.policy.origin) and (
            path.startswith(SOCKET_PATH) or (method not in SAFE_METHODS and not _oauth_callback(path))
        ):
            await refuse(send, 403, f"cross-origin request refused: only pages of {self.policy.origin} may do this")
            return
        if method == "POST" and path in UPLOAD_PATHS and not self.policy.uploads:
            await refuse(send, 403, "this app takes no file uploads")
            return
        limit = self.policy.max_body_bytes
        too_large = f"the request body is larger than {limit} bytes"
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await refuse(send, 400, "Content-Length must be a number")
                return
            if int(length) > limit:
                await refuse(send, 413, too_large)
                return
        elif method not in SAFE_METHODS:
            body = await read_body(receive, limit)
            if body is None:
                await refuse(send, 413, too_large)
                return
            receive = replay(body, receive)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = with_security_headers(message, path, self.policy, headers.get("host"))
            await send(message)

        await self.app(scope, receive, send_with_headers)
