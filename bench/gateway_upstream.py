"""A fast OpenAI-compatible upstream for the gateway benchmark, in its own process (asyncio, no framework).

``python bench/gateway_upstream.py [--chunk-delay-ms MS]`` listens on a free port of 127.0.0.1 and
prints ``listening PORT`` once it does. Every ``POST .../chat/completions`` gets the same small reply
(``REPLY``, billed ``PROMPT_TOKENS`` / ``COMPLETION_TOKENS``): with ``"stream": true`` as server-sent
events, one chunk a word, then the finish chunk, a usage chunk when ``stream_options.include_usage`` is
true (as OpenAI does) and ``data: [DONE]``; otherwise one JSON completion. Connections are kept alive
(HTTP/1.1, chunked), as a provider's are, so the clients' pools are measured and not TCP set-up.

The first segment of the path names who called (``/direct/v1``, ``/proxy/v1``, ``/gateway/v1``):
``GET /stats`` answers how many completions each was sent, for the benchmark's checks.

Plain asyncio on purpose: the test upstream (``tests/support/upstream.py``) is a thread per connection
and would be the bottleneck at 500 concurrent streams.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from typing import Any

PROMPT_TOKENS = 47
COMPLETION_TOKENS = 19
REPLY = "the upstream replies with these words"
MODEL = "gpt-4o-mini"
USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
}


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    event = f"data: {data}\n\n".encode()
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"  # one HTTP chunk per event


def stream_events(call_id: str, model: str, include_usage: bool) -> list[bytes]:
    """The HTTP chunks of one streamed completion, the terminating zero-length chunk last."""
    base = {"id": call_id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model}
    events = []
    for i, word in enumerate(REPLY.split(" ")):
        delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
        events.append(_event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}))
    events.append(_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if include_usage:
        events.append(_event({**base, "choices": [], "usage": USAGE}))
    events.append(_event("[DONE]"))
    events.append(b"0\r\n\r\n")
    return events


def completion(call_id: str, model: str) -> bytes:
    message = {"role": "assistant", "content": REPLY}
    return json.dumps(
        {
            "id": call_id,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": USAGE,
        }
    ).encode()


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Upstream:
    def __init__(self, chunk_delay_s: float) -> None:
        self.chunk_delay_s = chunk_delay_s
        self.completions: Counter[str] = Counter()
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {}
                for line in header_lines:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                await self.respond(writer, method, path, body)
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def respond(self, writer: asyncio.StreamWriter, method: str, path: str, body: bytes) -> None:
        if method == "GET":
            data = json.dumps({"completions": dict(self.completions), "served": self.served}).encode()
            writer.write(_head("200 OK", {"content-type": "application/json", "content-length": str(len(data))}))
            writer.write(data)
            await writer.drain()
            return
        if not path.rstrip("/").endswith("/chat/completions"):
            data = b'{"error": {"message": "only /chat/completions here", "type": "invalid_request_error"}}'
            writer.write(_head("404 Not Found", {"content-type": "application/json", "content-length": str(len(data))}))
            writer.write(data)
            await writer.drain()
            return
        request = json.loads(body or b"{}")
        caller = path.strip("/").split("/", 1)[0]
        self.served += 1
        self.completions[caller] += 1
        call_id = f"chatcmpl-{self.served}"
        model = str(request.get("model") or MODEL)
        if not request.get("stream"):
            data = completion(call_id, model)
            writer.write(_head("200 OK", {"content-type": "application/json", "content-length": str(len(data))}))
            writer.write(data)
            await writer.drain()
            return
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        writer.write(_head("200 OK", {"content-type": "text/event-stream", "transfer-encoding": "chunked"}))
        events = stream_events(call_id, model, include_usage)
        if not self.chunk_delay_s:
            writer.write(b"".join(events))
        else:
            for event in events:
                writer.write(event)
                await writer.drain()
                await asyncio.sleep(self.chunk_delay_s)
        await writer.drain()


async def serve(chunk_delay_s: float) -> None:
    upstream = Upstream(chunk_delay_s)
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="pause after each event (default 0)")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.chunk_delay_ms / 1000))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
