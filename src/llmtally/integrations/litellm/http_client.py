"""One HTTP client, for the process, where LiteLLM would make a new one for each call.

LiteLLM's ``text-completion-openai`` handler builds a new OpenAI client for every non-streamed call with
a static key, each with its own aiohttp session and connection, and never closes it. A server answering
legacy completions then opens a connection to the upstream per call, keeps it until the garbage collector
finds the session, and logs "Unclosed client session" when it does. LiteLLM takes ``litellm.aclient_session``
instead wherever it would make such a client, so the server commands (``llmtally up``, ``llmtally gateway``
and each of its workers) set it to one client for the process (LiteLLM's own kind, with its aiohttp
transport), unless the application set one of its own.

It is set by the commands only, not by the gateway's classes: it is global to the process, and made for a
process that runs one event loop, as a server does. A process that runs LiteLLM on many short-lived loops
(a test suite, a script calling ``asyncio.run`` repeatedly) would leave each loop's connections open
behind it. The client itself stays open while the process runs (LiteLLM's cached clients may hold it); a
server that stops closes the connections of its loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_lock = threading.Lock()
_shared: Any = None  # the client this module made litellm.aclient_session, if it did


def share_http_client() -> None:
    """Make ``litellm.aclient_session`` one client for the process, unless it is set already."""
    import litellm
    from litellm.llms.openai.common_utils import BaseOpenAILLM

    global _shared
    with _lock:
        if litellm.aclient_session is None:
            _shared = litellm.aclient_session = BaseOpenAILLM.get_async_http_client()


async def close_connections() -> None:
    """Close the shared client's connections of the running event loop (its aiohttp session for this
    loop); the client opens new ones if it is used again, on this loop or another."""
    import aiohttp

    session = getattr(getattr(_shared, "_transport", None), "client", None)
    if (
        isinstance(session, aiohttp.ClientSession)
        and not session.closed
        and getattr(session, "_loop", None) is asyncio.get_running_loop()
    ):
        await session.close()
