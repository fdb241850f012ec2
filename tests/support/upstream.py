"""A small OpenAI-compatible upstream for tests: real HTTP on 127.0.0.1, in a thread, with a billing log.

The first segment of the request's path picks the behaviour (``up.api_base("flaky2-a")``), so the model
name stays one LiteLLM prices:

    ok[-*]            a completion
    fail500[-*]       HTTP 500
    fail429[-*]       HTTP 429
    fail400[-*]       HTTP 400 (a request the provider refuses)
    nousage[-*]       a completion; streamed, never a usage chunk, even when asked for one
    flaky<N>[-*]      HTTP 500 for the first N requests to this exact segment, then completions
    cached[-*]        a completion whose usage reports prompt_tokens_details.cached_tokens
    reasoning[-*]     a completion whose usage reports completion_tokens_details.reasoning_tokens
    slow[-*]          a completion; streamed, 24 chunks 0.2 s apart (for a client that leaves mid-stream)
    late[-*]          a completion; streamed, the first chunk after FIRST_CHUNK_DELAY_S, the rest at once
    midfail[-*]       streamed: two chunks, then an error event (a provider failing mid-stream); billed nothing
    counted[-*]       a chat completion billed what a worst-case reservation counts: the prompt's tokens by
                      LiteLLM's tokenizer, and max_tokens (at most COMPLETION_TOKENS) completion tokens

A request to ``.../embeddings`` gets one embedding per input (``EMBEDDING_DIMENSIONS`` floats), billed
``PROMPT_TOKENS`` prompt tokens and no completion tokens (``Billed.endpoint`` is ``"embeddings"``).
``.../completions`` (legacy text completions) answers a ``text_completion`` with the same usage;
``.../responses`` (the Responses API) a ``response`` whose usage is ``input_tokens``/``output_tokens``,
streamed as typed events ending with ``response.completed`` (``slow`` and ``midfail`` apply to both).
A response is stored (unless the request says ``"store": false``, or it failed mid-stream), as OpenAI
stores it: ``GET .../responses/{id}`` answers it again and ``DELETE .../responses/{id}`` deletes it
(``{"id", "object": "response", "deleted": true}``); an id it does not hold is a 404, as OpenAI's.
``Upstream.lookups`` lists those requests (:class:`Lookup`); they bill nothing.
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROMPT_TOKENS = 47
COMPLETION_TOKENS = 19
CACHED_TOKENS = 32
REASONING_TOKENS = 11
REPLY = "the upstream replies with these words"
EMBEDDING_DIMENSIONS = 8
FIRST_CHUNK_DELAY_S = 0.6
ENDPOINTS = ("embeddings", "completions", "responses")  # by the path's end; anything else is chat


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
    body: dict[str, Any] = field(default_factory=dict, compare=False)  # the request as the upstream got it


@dataclass(frozen=True)
class Lookup:
    """A GET ("GET items" for its input items) or DELETE of a stored response, as the upstream got it."""

    method: str
    behaviour: str
    id: str
    query: str  # the query string, undecoded


class Upstream:
    """Start with ``with Upstream() as up:``; point LiteLLM at ``up.api_base(behaviour)``."""

    def __init__(self) -> None:
        self.billed: list[Billed] = []
        self.requests: Counter[str] = Counter()
        self.agents: list[tuple[str, str]] = []  # (behaviour, User-Agent) of every request, in order
        self.peers: list[tuple[str, int]] = []  # (behaviour, client port) of every request: its connection
        self.stored: dict[str, dict[str, Any]] = {}  # the stored responses, by id
        self.lookups: list[Lookup] = []  # GET and DELETE of a stored response
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
                ends = [e for e in ENDPOINTS if path.endswith(f"/{e}") and not path.endswith("/chat/completions")]
                endpoint = ends[0] if ends else "chat"
                behaviour = path.split("/", 1)[0]
                with upstream._lock:
                    upstream.agents.append((behaviour, self.headers.get("user-agent", "")))
                    upstream.peers.append((behaviour, self.client_address[1]))
                upstream._handle(self, behaviour, body, endpoint)

            def do_GET(self) -> None:
                upstream._stored_response(self, "GET")

            def do_DELETE(self) -> None:
                upstream._stored_response(self, "DELETE")

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

    def connections_of(self, behaviour: str) -> set[int]:
        """The connections (client ports) requests to ``behaviour`` came on."""
        with self._lock:
            return {port for b, port in self.peers if b == behaviour}

    def agents_of(self, behaviour: str) -> list[str]:
        """The User-Agent of each request to ``behaviour`` (the HTTP client that sent it), in order."""
        with self._lock:
            return [agent for b, agent in self.agents if b == behaviour]

    def billed_for(self, behaviour: str) -> list[Billed]:
        with self._lock:
            return [b for b in self.billed if b.behaviour == behaviour]

    def lookups_of(self, response_id: str) -> list[Lookup]:
        """The requests for the stored response ``response_id`` (the upstream's own id), oldest first."""
        with self._lock:
            return [lookup for lookup in self.lookups if lookup.id == response_id]

    def _stored_response(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        """GET or DELETE ``/{behaviour}/v1/responses/{id}``: the stored response, or a 404 as OpenAI's."""
        found = re.fullmatch(r"([^/]+)/v1/responses/([^/?]+)(/input_items)?(\?.*)?", handler.path.strip("/"))
        if found is None or (found.group(3) and method != "GET"):
            return _error(handler, 404, f"no route {method} {handler.path}")
        behaviour, response_id, items = found.group(1), found.group(2), bool(found.group(3))
        with self._lock:
            query = (found.group(4) or "").lstrip("?")
            self.lookups.append(Lookup("GET items" if items else method, behaviour, response_id, query))
            stored = self.stored.get(response_id)
            if stored is not None and method == "DELETE":
                del self.stored[response_id]
        if stored is None:
            return _error(handler, 404, f"Response with id '{response_id}' not found.", "invalid_request_error")
        if method == "DELETE":
            return _send_json(handler, {"id": response_id, "object": "response", "deleted": True})
        if items:
            data = _input_items(stored["_input"], response_id)
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            listed = {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": False}
            return _send_json(handler, listed)
        return _send_json(handler, {k: v for k, v in stored.items() if k != "_input"})

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
        if kind == "fail400":
            return _error(handler, 400, "the upstream refuses this request")
        flaky = re.fullmatch(r"flaky(\d+)", kind)
        if flaky and seen <= int(flaky.group(1)):
            return _error(handler, 500, f"flaky upstream, attempt {seen}")
        if endpoint == "embeddings":
            return self._embeddings(handler, behaviour, model, body)
        cached = CACHED_TOKENS if kind == "cached" else 0
        reasoning = REASONING_TOKENS if kind == "reasoning" else 0
        stream = bool(body.get("stream"))
        prefix = {"completions": "cmpl", "responses": "resp"}.get(endpoint, "chatcmpl")
        prompt_tokens, completion_tokens = _counted(body) if kind == "counted" else (PROMPT_TOKENS, COMPLETION_TOKENS)
        bill = Billed(
            id=f"{prefix}-{next(self._ids)}",
            behaviour=behaviour,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            stream=stream,
            endpoint=endpoint,
            body=body,
        )
        if kind != "midfail":
            with self._lock:
                self.billed.append(bill)
        if endpoint == "completions":
            return _text_completion(handler, bill, kind, body)
        if endpoint == "responses":
            if kind != "midfail" and body.get("store") is not False:
                with self._lock:
                    self.stored[bill.id] = {**_response_payload(bill)[1], "_input": body.get("input")}
            return _response(handler, bill, kind)
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
        # nousage: a server that ignores stream_options (some OpenAI-compatible ones do)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and kind != "nousage"
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


def _error(handler: BaseHTTPRequestHandler, code: int, message: str, type: str = "server_error") -> None:
    data = json.dumps({"error": {"message": message, "type": type, "code": code}}).encode()
    handler.send_response(code)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _words(kind: str) -> list[str]:
    return REPLY.split(" ") * (4 if kind == "slow" else 1)


def _pause(handler: BaseHTTPRequestHandler, kind: str) -> None:
    if kind == "slow":
        handler.wfile.flush()
        time.sleep(0.2)


def _input_items(given: Any, response_id: str) -> list[dict[str, Any]]:
    """A response's input as OpenAI lists it (``GET /responses/{id}/input_items``), newest first."""
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else list(given or [])
    items = []
    for i, message in enumerate(messages):
        content = message.get("content")
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else list(content or [])
        items.append({"id": f"msg_{response_id}_{i}", "type": "message", "role": message.get("role"), "content": parts})
    return items[::-1]


def _send_json(handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(200)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _start_events(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("content-type", "text/event-stream")
    handler.send_header("connection", "close")
    handler.end_headers()


def _end_events(handler: BaseHTTPRequestHandler, done: bool) -> None:
    if done:
        handler.wfile.write(b"data: [DONE]\n\n")
    handler.wfile.flush()
    handler.close_connection = True


def _text_completion(handler: BaseHTTPRequestHandler, bill: Billed, kind: str, body: dict[str, Any]) -> None:
    """POST /completions (the legacy text completions): a text choice, streamed as text chunks."""
    base = {"id": bill.id, "object": "text_completion", "created": 1_700_000_000, "model": bill.model}
    if not bill.stream:
        choice = {"text": REPLY, "index": 0, "logprobs": None, "finish_reason": "stop"}
        return _send_json(handler, {**base, "choices": [choice], "usage": _usage(bill)})
    _start_events(handler)
    for i, word in enumerate(_words(kind)):
        choice = {"text": word if i == 0 else " " + word, "index": 0, "logprobs": None, "finish_reason": None}
        handler.wfile.write(b"data: " + json.dumps({**base, "choices": [choice]}).encode() + b"\n\n")
        _pause(handler, kind)
        if kind == "midfail" and i == 1:
            error = {"error": {"message": "the provider failed mid-stream", "type": "server_error", "code": None}}
            handler.wfile.write(b"data: " + json.dumps(error).encode() + b"\n\n")
            return _end_events(handler, False)
    last = {"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}
    handler.wfile.write(b"data: " + json.dumps({**base, "choices": [last]}).encode() + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {**base, "choices": [], "usage": _usage(bill)}
        handler.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
    _end_events(handler, True)


def _response_payload(bill: Billed) -> tuple[dict[str, Any], dict[str, Any]]:
    """The output message and the completed ``response`` object of a Responses API bill."""
    message = {
        "type": "message",
        "id": f"msg-{bill.id}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": REPLY, "annotations": []}],
    }
    usage = {
        "input_tokens": bill.prompt_tokens,
        "input_tokens_details": {"cached_tokens": bill.cached_tokens},
        "output_tokens": bill.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": bill.reasoning_tokens},
        "total_tokens": bill.prompt_tokens + bill.completion_tokens,
    }
    done = {
        "id": bill.id,
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": bill.model,
        "output": [message],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }
    return message, done


def _response(handler: BaseHTTPRequestHandler, bill: Billed, kind: str) -> None:
    """POST /responses (the Responses API): usage as input_tokens/output_tokens; streamed as typed events
    ending with ``response.completed``, which carries the usage (always, as OpenAI sends it)."""
    message, done = _response_payload(bill)
    if not bill.stream:
        return _send_json(handler, done)
    _start_events(handler)
    sequence = itertools.count()

    def send(type: str, **fields: Any) -> None:
        event = {"type": type, "sequence_number": next(sequence), **fields}
        handler.wfile.write(f"event: {type}\ndata: ".encode() + json.dumps(event).encode() + b"\n\n")

    started = {**done, "status": "in_progress", "output": [], "usage": None}
    send("response.created", response=started)
    send("response.output_item.added", output_index=0, item={**message, "status": "in_progress", "content": []})
    for i, word in enumerate(_words(kind)):
        send(
            "response.output_text.delta",
            item_id=message["id"],
            output_index=0,
            content_index=0,
            delta=word if i == 0 else " " + word,
        )
        _pause(handler, kind)
        if kind == "midfail" and i == 1:
            send("error", code="server_error", message="the provider failed mid-stream", param=None)
            return _end_events(handler, False)
    send("response.output_text.done", item_id=message["id"], output_index=0, content_index=0, text=REPLY)
    send("response.output_item.done", output_index=0, item=message)
    send("response.completed", response=done)
    _end_events(handler, False)


def _counted(body: dict[str, Any]) -> tuple[int, int]:
    """The tokens a reservation counts for this chat request: its prompt by LiteLLM's tokenizer, its max_tokens."""
    import litellm

    prompt = litellm.token_counter(model="gpt-4o-mini", messages=body.get("messages") or [])
    return int(prompt), min(COMPLETION_TOKENS, int(body.get("max_tokens") or COMPLETION_TOKENS))
