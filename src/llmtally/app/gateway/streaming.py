"""A budgeted LiteLLM stream sent to the client as OpenAI's server-sent events.

Each chunk is ``data: {chat.completion.chunk}`` (or a ``text_completion`` chunk); the stream ends with
``data: [DONE]``. A Responses API stream is typed events instead (:func:`response_events`). The upstream is
always asked for its usage (``stream_options.include_usage``) so the ledger records what was billed; the
client gets the usage chunk only when it asked for it too, as from OpenAI. An upstream failure in the
middle of the stream is sent as one ``data: {"error": ...}`` event. A client that leaves before the end
(the connection closes, or the response is cancelled) is recorded as ``cancelled`` with what was streamed
to it, by :class:`llmtally.budgeted_calls.BudgetedStream`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Send

from llmtally.app.gateway.direct import PassedEvents
from llmtally.app.gateway.errors import from_exception
from llmtally.budgeted_calls import BudgetedStream

DONE = b"data: [DONE]\n\n"
LEFT = "client disconnected"


def chunk_data(chunk: Any, include_usage: bool) -> bytes | None:
    """One chunk as the JSON of an event; None for the usage chunk of a client that did not ask for it."""
    data: dict[str, Any] = chunk.model_dump(mode="json", exclude_none=True)
    if not include_usage:
        data.pop("usage", None)
        if not data.get("choices"):
            return None
    return json.dumps(data, separators=(",", ":")).encode()


async def sse_events(stream: BudgetedStream, include_usage: bool) -> AsyncIterator[bytes]:
    stream.cancel_reason = LEFT  # the response is cancelled when the client leaves
    try:
        try:
            async for chunk in stream:
                if isinstance(chunk, PassedEvents):  # as the upstream sent them, in one write
                    events = chunk.sse(include_usage)
                    if events:
                        yield events
                    continue
                data = chunk_data(chunk, include_usage)
                if data is not None:
                    yield b"data: " + data + b"\n\n"
        except Exception as exc:  # the provider failed mid-stream: the stream recorded the failure
            yield b"data: " + json.dumps(from_exception(exc).body()).encode() + b"\n\n"
        yield DONE
    finally:
        stream.record_cancelled(LEFT)  # nothing when the stream ended or failed
        with anyio.CancelScope(shield=True):
            await stream.aclose(LEFT)


def response_event(event: Any) -> bytes:
    """One Responses API event as OpenAI sends it: ``event: <type>`` then its JSON."""
    data: dict[str, Any] = event.model_dump(mode="json", exclude_none=True)
    kind = str(data.get("type") or "message")
    return f"event: {kind}\ndata: ".encode() + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def response_events(stream: BudgetedStream) -> AsyncIterator[bytes]:
    """A Responses API stream: typed events, the last ``response.completed`` with the usage (always, as
    from OpenAI), no ``[DONE]``; an upstream failure mid-stream is one ``error`` event."""
    stream.cancel_reason = LEFT
    try:
        try:
            async for event in stream:
                yield response_event(event)
        except Exception as exc:
            error = from_exception(exc)
            data = {"type": "error", "code": error.code, "message": error.message, "param": error.param}
            yield b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    finally:
        stream.record_cancelled(LEFT)
        with anyio.CancelScope(shield=True):
            await stream.aclose(LEFT)


class EventStreamResponse(StreamingResponse):
    """A streaming response that closes its events at once when the client leaves (so the call is
    recorded as cancelled now, not when the generator is collected)."""

    def __init__(self, events: AsyncIterator[bytes]) -> None:
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self._events = events

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            close = getattr(self._events, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
