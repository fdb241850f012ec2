"""Chainlit's page without other hosts: its ``index.html`` links Google's fonts and KaTeX's
stylesheet from CDNs, which fail offline and tell those hosts who opens the chat.

The fonts block is emptied by the theme (``custom_fonts: []``, see :mod:`llmtally.app.chat_theme`);
this layer drops what remains: ``<link>`` tags whose ``href`` is on another host (the preconnects
and KaTeX's stylesheet, unused since LaTeX is off). It rewrites HTML responses only. A page
request (one that accepts ``text/html``) goes on without ``Accept-Encoding``, so Chainlit sends
its page uncompressed (it is 2 kB) and the links can be read; scripts and styles stay compressed.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_FOREIGN_LINK = re.compile(rb"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>\s*", re.IGNORECASE)


def without_foreign_links(html: bytes) -> bytes:
    """``html`` without its ``<link>`` tags to other hosts."""
    return _FOREIGN_LINK.sub(b"", html)


class LocalAssetsOnly:
    """An ASGI layer that removes links to other hosts from HTML responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        headers = list(scope.get("headers", []))
        accept = dict(headers).get(b"accept", b"")
        if b"text/html" in accept:
            scope = {**scope, "headers": [(k, v) for k, v in headers if k != b"accept-encoding"]}
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                kind = dict(message.get("headers", [])).get(b"content-type", b"")
                if not kind.startswith(b"text/html"):
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = without_foreign_links(b"".join(chunks))
            headers: list[tuple[bytes, bytes]] = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body if scope["method"] == "GET" else b""})

        await self.app(scope, receive, rewrite)
