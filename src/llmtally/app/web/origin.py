"""The one origin policy: which requests come from the app's own pages.

A request that changes state (any method but GET, HEAD and OPTIONS) and the chat's websocket are
refused when the browser says they come from another origin: the ``Origin`` header, or the
``Referer`` when a browser sends no ``Origin``, must be the app's public URL (scheme, host and port).
``Origin: null`` (sandboxed frames, some redirects) is another origin.

A request with neither header is let through: browsers send ``Origin`` on every cross-origin POST
and websocket handshake, so such a request does not come from another site's page in a browser, and
it carries no victim's cookies. (Scripts and the CLI send neither.)
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, lower-cased, default port dropped; None if it has none."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def same_origin(headers: Mapping[str, str], allowed: str) -> bool:
    """Whether a request with these (lower-case) headers may act for the app at origin ``allowed``."""
    origin = headers.get("origin")
    if origin is not None:
        return origin_of(origin) == allowed
    referer = headers.get("referer")
    if referer is not None:
        return origin_of(referer) == allowed
    return True


def asgi_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """An ASGI scope's headers as a dict of lower-case names (the first value of each)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers
