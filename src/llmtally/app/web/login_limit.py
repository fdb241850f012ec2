"""Brute-force limit on ``POST /login``: failures counted per user name and per client address.

After ``max_failures`` failed logins within ``window_seconds`` for one name, or for one client
address, further attempts for it are refused with 429 and ``Retry-After`` (seconds until the oldest
counted failure leaves the window), before the password is checked. A successful login clears its
name's count (not its address's: one's own account must not reset a guessing address).

The counts are kept in this process's memory: they reset when the server restarts and are not
shared between several server processes (each counts on its own). The client address is the one
uvicorn reports, which is the proxy's unless the server trusts forwarded headers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmtally.app.web.guard import MAX_BODY_BYTES, read_body, refuse, replay

LOGIN_PATH = "/login"
_MAX_KEYS = 10_000


@dataclass
class FailureWindow:
    """Failure times per key in a sliding window, in memory."""

    max_failures: int = 10
    window_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may try again, or None when it may now."""
        now = self.clock()
        times = self._recent(key, now)
        if len(times) < self.max_failures:
            return None
        return max(1, int(times[-self.max_failures] + self.window_seconds - now + 0.999))

    def fail(self, key: str) -> None:
        now = self.clock()
        if len(self._failures) >= _MAX_KEYS:
            for stale in [k for k, t in self._failures.items() if not t or t[-1] <= now - self.window_seconds]:
                del self._failures[stale]
        self._failures.setdefault(key, deque()).append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


@dataclass
class LoginLimits:
    by_name: FailureWindow = field(default_factory=FailureWindow)
    by_address: FailureWindow = field(default_factory=lambda: FailureWindow(max_failures=30))


class LoginLimit:
    """ASGI middleware counting the answers of ``POST /login`` (401: a failure, 2xx: a success)."""

    def __init__(self, app: ASGIApp, limits: LoginLimits | None = None) -> None:
        self.app = app
        self.limits = limits or LoginLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != LOGIN_PATH:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await refuse(send, 413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
            return
        name = "name:" + await _username(scope, body)
        client = scope.get("client")
        address = "address:" + (client[0] if client else "unknown")
        waits = [
            w
            for w in (self.limits.by_name.retry_after(name), self.limits.by_address.retry_after(address))
            if w is not None
        ]
        if waits:
            wait = max(waits)
            await refuse(
                send,
                429,
                f"too many failed logins: try again in {wait} seconds",
                ((b"retry-after", str(wait).encode()),),
            )
            return
        status: list[int] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        await self.app(scope, replay(body, receive), watch)
        if status and status[0] == 401:
            self.limits.by_name.fail(name)
            self.limits.by_address.fail(address)
        elif status and 200 <= status[0] < 300:
            self.limits.by_name.clear(name)


async def _username(scope: Scope, body: bytes) -> str:
    """The form's ``username`` (url-encoded or multipart, as Chainlit's form accepts), or ""."""

    async def once() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
    except Exception:  # a malformed form: Chainlit refuses it; count it under the empty name
        return ""
    value = form.get("username")
    return value.strip().lower() if isinstance(value, str) else ""
