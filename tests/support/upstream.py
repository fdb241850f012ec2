"""A small OpenAI-compatible upstream for tests: real HTTP on 127.0.0.1, in a thread, with a billing log.

The first segment of the request's path picks the behaviour (``up.api_base("flaky2-a")``), so the model
name stays one LiteLLM prices:

    ok[-*]            a completion
    fail500[-*]       HTTP 500
    fail429[-*]       HTTP 429
    flaky<N>[-*]      HTTP 500 for the first N requests to this exact segment, then completions
    cached[-*]        a completion whose usage reports prompt_tokens_details.cached_tokens
    reasoning[-*]     a completion whose usage reports completion_tokens_details.reasoning_tokens
    slow[-*]          a completion; streamed, 24 chunks 0.2 s apart (for a client that leaves mid-stream)
    late[-*]          a completion; streamed, the first chunk after FIRST_CHUNK_DELAY_S, the rest at once
    midfail[-*]       streamed: two chunks, then an error event (a provider failing mid-stream); billed nothing

A request to ``.../embeddings`` gets one embedding per input (``EMBEDDING_DIMENSIONS`` floats), billed
``PROMPT_TOKENS`` prompt tokens and no completion tokens (``Billed.endpoint`` is ``"embeddings"``).
A streamed request (``"stream": true``) gets server-sent events, with a final usage chunk only when
``stream_options.include_usage`` is true, as OpenAI does. Every response that carries a completion is
billed: ``Upstream.billed`` lists them (model, prompt, completion, cached and reasoning tokens).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROMPT_TOKENS = 47
COMPLETION_TOKENS = 19
CACHED_TOKENS = 32
REASONING_TOKENS = 11
REPLY = "the upstream replies with these words"
EMBEDDING_DIMENSIONS = 8
FIRST_CHUNK_DELAY_S = 0.6


@dataclass(frozen=True)
class Billed:
    id: str
    behaviour: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    stream: bool
    endpoint: str = "chat"


class Upstream:
    """Start with ``with Upstream() as up:``; point LiteLLM at ``up.api_base(behaviour)``."""

    def __init__(self) -> None:
        self.billed: list[Billed] = []
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = self.path.strip("/")
                endpoint = "embeddings" if path.endswith("/embeddings") else "chat"
                upstream._handle(self, path.split("/", 1)[0], body, endpoint)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="upstream", daemon=True)

    def api_base(self, behaviour: str = "ok") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{behaviour}/v1"

    def __enter__(self) -> Upstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def billed_for(self, behaviour: str) -> list[Billed]:
        with self._lock:
            return [b for b in self.billed if b.behaviour == behaviour]

    # -- behaviour -----------------------------------------------------------------------------
    def _handle(
        self, handler: BaseHTTPRequestHandler, behaviour: str, body: dict[str, Any], endpoint: str = "chat"
    ) -> None:
        model = str(body.get("model", "unknown"))
        with self._lock:
            self.requests[behaviour] += 1
            seen = self.requests[behaviour]
        kind = behaviour.split("-", 1)[0]
        if kind == "fail500":
            return _error(handler, 500, "upstream exploded")
        if kind == "fail429":
            return _error(handler, 429, "rate limited upstream")
        flaky = re.fullmatch(r"flaky(\d+)", kind)
        if flaky and seen <= int(flaky.group(1)):
            return _error(handler, 500, f"flaky upstream, attempt {seen}")
        if endpoint == "embeddings":
            return self._embeddings(handler, behaviour, model, body)
        cached = CACHED_TOKENS if kind == "cached" else 0
        reasoning = REASONING_TOKENS if kind == "reasoning" else 0
        stream = bool(body.get("stream"))
        bill = Billed(
            id=f"chatcmpl-{next(self._ids)}",
            behaviour=behaviour,
            model=model,
            prompt_tokens=PROMPT_TOKENS,
            completion_tokens=COMPLETION_TOKENS,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            stream=stream,
        )
        if kind != "midfail":
            with self._lock:
                self.billed.append(bill)
        usage = _usage(bill)
        if not stream:
            message = {"role": "assistant", "content": REPLY}
            payload = {
                "id": bill.id,
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": usage,
            }
            data = json.dumps(payload).encode()
            handler.send_response(200)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("connection", "close")
        handler.end_headers()
        words = REPLY.split(" ") * (4 if kind == "slow" else 1)
        base = {"id": bill.id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model}
        if kind == "late":
            handler.wfile.flush()
            time.sleep(FIRST_CHUNK_DELAY_S)
        for i, word in enumerate(words):
            delta = {"role": "assistant", "content": word if i == 0 else " " + word}
            chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            handler.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if kind == "slow":
                handler.wfile.flush()
                time.sleep(0.2)
            if kind == "midfail" and i == 1:
                error = {"error": {"message": "the provider failed mid-stream", "type": "server_error", "code": None}}
                handler.wfile.write(b"data: " + json.dumps(error).encode() + b"\n\n")
                handler.wfile.flush()
                handler.close_connection = True
                return
        last = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        handler.wfile.write(b"data: " + json.dumps(last).encode() + b"\n\n")
        if include_usage:
            handler.wfile.write(b"data: " + json.dumps({**base, "choices": [], "usage": usage}).encode() + b"\n\n")
        handler.wfile.write(b"data: [DONE]\n\n")
        handler.wfile.flush()
        handler.close_connection = True

    def _embeddings(self, handler: BaseHTTPRequestHandler, behaviour: str, model: str, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and not all(isinstance(t, int) for t in inputs) else 1
        bill = Billed(f"emb-{next(self._ids)}", behaviour, model, PROMPT_TOKENS, 0, 0, 0, False, "embeddings")
        with self._lock:
            self.billed.append(bill)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [round(0.1 * (i + 1) * d, 3) for d in range(EMBEDDING_DIMENSIONS)],
            }
            for i in range(count)
        ]
        usage = {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS}
        payload = json.dumps({"object": "list", "data": data, "model": model, "usage": usage}).encode()
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _usage(bill: Billed) -> dict[str, Any]:
    return {
        "prompt_tokens": bill.prompt_tokens,
        "completion_tokens": bill.completion_tokens,
        "total_tokens": bill.prompt_tokens + bill.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": bill.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": bill.reasoning_tokens, "audio_tokens": 0},
    }


def _error(handler: BaseHTTPRequestHandler, code: int, message: str) -> None:
    data = json.dumps({"error": {"message": message, "type": "server_error", "code": code}}).encode()
    handler.send_response(code)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
