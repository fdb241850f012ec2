"""``POST /v1/chat/completions``: the gateway's busiest route, answered by a plain ASGI layer.

:class:`ChatCompletions` sits in front of the app's routing (inside the request guard, so origins, body
size and security headers apply as to every route) and answers this one route itself, without the
framework's layers between the guard and the endpoint (the mounted /v1 FastAPI app, its middleware and
routing, the request's dependency solving): measured side by side, 2.26 against 2.59 ms of CPU per
streamed request (docs/benchmarks.md, part 7). Any
other request, or this path under another prefix, goes on to the app; the /v1 app's route answers it
with the same :func:`chat_completion`, so both give the same answers.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from llmtally.app.gateway.access import Gateway
from llmtally.app.gateway.admitted import admitted_chat
from llmtally.app.gateway.direct import DirectReply
from llmtally.app.gateway.errors import GatewayError, from_exception
from llmtally.app.gateway.streaming import EventStreamResponse, sse_events
from llmtally.budgeted_calls import BudgetedStream

PATH = "/v1/chat/completions"


async def chat_completion(gateway: Gateway, request: Request) -> Response:
    """One chat completion, streamed or not: admitted (the key checked, the call reserved), then made."""
    admitted = await admitted_chat(gateway, request)
    chat = admitted.chat
    passed: dict[str, Any] = dict(chat.parameters)
    if chat.stream:  # the upstream's own count of a stream, whatever the client asked
        passed["stream_options"] = {"include_usage": True}
    try:
        response = await gateway.budgets.acompletion(
            **admitted.billed,
            messages=chat.messages,
            max_tokens=chat.max_tokens,
            stream=chat.stream,
            reserved=admitted.reserved,
            **passed,
        )
    except Exception as exc:
        raise from_exception(exc) from None
    if isinstance(response, BudgetedStream):
        return EventStreamResponse(sse_events(response, chat.include_usage))
    if isinstance(response, DirectReply):  # the upstream's own JSON
        return Response(response.body, media_type="application/json")
    return JSONResponse(response.model_dump(mode="json"))


class ChatCompletions:
    """The ASGI layer that answers ``POST /v1/chat/completions`` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        try:
            response = await chat_completion(self.gateway, Request(scope, receive))
        except GatewayError as exc:
            response = exc.response()
        except Exception as exc:  # as the /v1 app's handler of anything else answers it
            response = from_exception(exc).response()
        await response(scope, receive, send)
