"""Chat completions sent straight to an OpenAI-compatible upstream, without LiteLLM's Router on the way.

Through LiteLLM's Router a streamed call costs the gateway 21 to 26 ms of CPU, most of it LiteLLM's (its
stream wrapper, its logging, its pydantic objects; docs/benchmarks.md §7), far more than a local upstream
takes to answer; a direct call costs a fifth of that. So a model whose
deployments are plain ``openai/`` ones (:meth:`GatewayRouter.direct_deployments`), asked a chat completion
that LiteLLM would pass on as it is (the parameters of :data:`DIRECT_PARAMETERS`: one choice, no tools), is
called by the gateway itself over one pooled HTTP client. The upstream's events go to the client as they
came, and the call is recorded with the row LiteLLM's callback would write: the upstream's usage, LiteLLM's
price of it, the deployment's id and host, the model group, the time to the first chunk.

Failures keep the Router's behaviour. An attempt that fails before its answer starts is recorded as a
failed attempt. If the Router would try again (a timeout, no connection, a 408, 409, 429 or 5xx with
retries configured, or any failure of a model with fallbacks), the call goes on through the Router after
its backoff, with one retry less (this attempt was the first), under the same call key and reservation;
after such a failure the model is called through the Router for its cooldown time. Otherwise (a request
the upstream refuses: 400, 401, 403, 404, 422; or no retries and no fallbacks) the client gets the answer
the Router would give. A failure in the middle of a stream is recorded and sent as one error event. One
difference: a model with fallbacks whose upstream refuses the request is tried once more by the Router
before it falls back (a refused request is not billed).
``LLMTALLY_GATEWAY_DIRECT=false`` sends every call through the Router.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from llmtally.app.gateway.direct_attempts import (
    CONNECTION_ERRORS,
    Attempt,
    DirectReply,
    Failure,
    PassedChunk,
    PassedEvents,
    failure_of,
    failure_of_exception,
    now,
)
from llmtally.domain.events import UsageEvent
from llmtally.integrations.litellm.router import DirectDeployment, GatewayRouter
from llmtally.ledger.ledger import Ledger

log = logging.getLogger("llmtally.gateway")

# Chat parameters LiteLLM sends to a plain OpenAI model unchanged; a request with any other goes through it.
DIRECT_PARAMETERS = frozenset(
    {"frequency_penalty", "logit_bias", "presence_penalty", "response_format", "seed", "stop", "temperature", "top_p"}
)
__all__ = ["DIRECT_PARAMETERS", "DirectCalls", "DirectReply", "DirectStream", "PassedEvents"]


class DirectCalls:
    """The direct chat completions of one gateway: which calls may go direct, the HTTP client, the records."""

    def __init__(self, router: GatewayRouter, ledger: Ledger) -> None:
        self._router = router
        self._ledger = ledger
        self._deployments = {name: router.direct_deployments(name) for name in router.model_names}
        self._fallbacks = {name: bool(router.config.fallbacks(name)) for name in router.model_names}
        self._resume_at: dict[str, float] = {}  # a model group called through the Router until then (monotonic)
        self._client: aiohttp.ClientSession | None = None

    def chat_call(self, model: str, parameters: Mapping[str, Any]) -> Callable[..., Awaitable[Any]] | None:
        """The call that makes this chat completion directly, or None when the Router must make it."""
        if not self._deployments.get(model) or not parameters.keys() <= DIRECT_PARAMETERS:
            return None
        if self._resume_at and time.monotonic() < self._resume_at.get(model, 0.0):
            return None
        return self.acompletion

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _http(self) -> aiohttp.ClientSession:
        if self._client is None:  # made on the server's event loop, at its first call
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=60)
            self._client = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
        return self._client

    def record(self, event: UsageEvent) -> None:
        try:
            self._ledger.record(event)
        except Exception:
            log.exception("could not record the gateway's call %s", event.litellm_call_id)

    def record_success(self, attempt: Attempt, usage: Any, response: Any, text: str = "") -> None:
        """Record a success once the client has its answer: its end is now, its event (and price) is made
        just after, off the answer's path (the next turn of the event loop)."""
        ended = now()

        def record() -> None:
            try:
                self.record(attempt.event("success", usage=usage, response=response, text=text, ended=ended))
            except Exception:
                log.exception("could not record the gateway's call %s", attempt.call_id)

        asyncio.get_running_loop().call_soon(record)

    async def acompletion(
        self,
        *,
        model: str,
        messages: list[dict[str, Any]],
        litellm_call_id: str,
        metadata: dict[str, Any],
        user: str | None = None,
        stream: bool = False,
        max_tokens: int | None = None,
        **parameters: Any,
    ) -> Any:
        """A chat completion from one of ``model``'s deployments (at random, as the Router's default
        strategy picks): a :class:`DirectReply`, a :class:`DirectStream`, or what the Router answers
        when the attempt failed. Takes the arguments :class:`llmtally.Budgets` gives the Router."""
        deployment = random.choice(self._deployments[model])
        parameters.pop("stream_options", None)  # the upstream is always asked for the usage of a stream
        body: dict[str, Any] = {"model": deployment.model, "messages": messages, **parameters}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if user:
            body["user"] = user
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        attempt = Attempt(deployment, litellm_call_id, metadata, messages, user, stream)
        failure: Failure | None = None
        try:
            response = await self._send(deployment, body, stream)
        except CONNECTION_ERRORS as exc:
            failure = failure_of_exception(exc)
        else:
            if response.status == 200:
                if stream:
                    return DirectStream(self, attempt, response)
                reply = await self._reply(attempt, response)
                if isinstance(reply, DirectReply):
                    return reply
                failure = reply
            else:
                failure = await failure_of(response)
        self.record(attempt.event("failure", failure=failure))
        retries = self._router.num_retries
        if not failure.refused():  # the upstream is in trouble: the Router's cooldowns decide for a while
            self._resume_at[model] = time.monotonic() + self._router.cooldown_s
        if not self._fallbacks.get(model) and (failure.refused() or retries == 0):
            raise failure.answer()  # the Router would not try again either
        log.info("direct call %s to %s failed (%s): the Router goes on", litellm_call_id, model, failure.name)
        if not failure.refused():
            await asyncio.sleep(self._router.retry_wait_s(model, failure.retry_after))
        return await self._router.acompletion(
            num_retries=max(0, retries - 1),  # this attempt was the first
            model=model,
            messages=messages,
            litellm_call_id=litellm_call_id,
            litellm_trace_id=litellm_call_id,  # its attempts are this call's
            metadata=metadata,
            user=user,
            stream=stream,
            max_tokens=max_tokens,
            **({"stream_options": {"include_usage": True}} if stream else {}),
            **parameters,
        )

    async def _send(self, deployment: DirectDeployment, body: dict[str, Any], stream: bool) -> aiohttp.ClientResponse:
        headers = {"authorization": f"Bearer {deployment.api_key}", "content-type": "application/json"}
        if deployment.organization:
            headers["openai-organization"] = deployment.organization
        if stream:  # no chunk for this long ends the stream
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=deployment.stream_timeout_s)
        else:
            timeout = aiohttp.ClientTimeout(total=deployment.timeout_s, sock_connect=30)
        return await self._http().post(
            f"{deployment.api_base}/chat/completions",
            data=json.dumps(body, separators=(",", ":")).encode(),
            headers=headers,
            timeout=timeout,
        )

    async def _reply(self, attempt: Attempt, response: aiohttp.ClientResponse) -> DirectReply | Failure:
        try:
            raw = await response.read()
        except CONNECTION_ERRORS as exc:
            return failure_of_exception(exc)
        finally:
            response.release()
        try:
            data = json.loads(raw)
        except ValueError:
            return Failure(502, "APIError", "the upstream's answer is not JSON")
        if not isinstance(data, dict):
            return Failure(502, "APIError", "the upstream's answer is not a JSON object")
        self.record_success(attempt, data.get("usage"), data)
        return DirectReply(raw)


class DirectStream:
    """A direct stream, read from the upstream's server-sent events: the chunks of each read
    (:class:`PassedEvents`, sent to the client in one write).

    Its end (``[DONE]``) records the call; a failure records the attempt and raises a
    :class:`GatewayError`; :meth:`aclose` stops reading (the client left: the stream's wrapper in
    :class:`llmtally.Budgets` records the call as cancelled).
    """

    def __init__(self, calls: DirectCalls, attempt: Attempt, response: aiohttp.ClientResponse) -> None:
        self._calls = calls
        self._attempt = attempt
        self._response = response
        self._buffer = b""
        self._ready: list[PassedChunk] = []
        self._parts: list[str] = []
        self._usage: Any = None
        self._finish_reason: Any = None
        self._head: dict[str, Any] = {}
        self._over = False  # recorded: nothing more is read
        self._failure: Failure | None = None  # raised once the chunks before it are taken
        self._drained = False

    def __aiter__(self) -> DirectStream:
        return self

    async def __anext__(self) -> PassedEvents:
        while not self._ready:
            if self._failure is not None:
                raise self._failure.answer()
            if self._over:
                await self._drain()
                raise StopAsyncIteration
            try:
                data = await self._response.content.readany()
            except CONNECTION_ERRORS as exc:
                self._fail(failure_of_exception(exc))
                continue
            if not data:  # the end of the answer
                if self._usage is None:
                    self._fail(Failure(502, "APIError", "the upstream closed the stream before its end"))
                self._succeed()
                continue
            if self._attempt.first_chunk_at is None:
                self._attempt.first_chunk_at = now()
            self._buffer += data.replace(b"\r\n", b"\n") if b"\r" in data else data
            *events, self._buffer = self._buffer.split(b"\n\n")
            for event in events:
                self._take(event)
        ready, self._ready = self._ready, []
        return PassedEvents(tuple(ready))

    def _take(self, event: bytes) -> None:
        for line in event.split(b"\n"):
            if self._over:
                return
            if line.startswith(b"data:"):
                self._take_data(line[5:].strip())

    def _take_data(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self._succeed()
            return
        try:
            chunk = json.loads(payload)
        except ValueError:
            self._fail(Failure(502, "APIError", "the upstream sent an event that is not JSON"))
            return
        if not isinstance(chunk, dict):
            return
        if chunk.get("error") is not None and not chunk.get("choices"):
            error = chunk["error"]
            message = error.get("message") if isinstance(error, Mapping) else error
            self._fail(Failure(502, "APIError", f"the upstream failed mid-stream: {message}"))
            return
        if not self._head:
            self._head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint")}
        text = None
        choices = chunk.get("choices")
        if choices and isinstance(choices[0], Mapping):
            delta = choices[0].get("delta")
            content = delta.get("content") if isinstance(delta, Mapping) else None
            if isinstance(content, str) and content:
                text = content
                self._parts.append(content)
            self._finish_reason = choices[0].get("finish_reason") or self._finish_reason
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        self._ready.append(PassedChunk(payload, chunk, text))

    def _reply(self) -> dict[str, Any]:
        """The stream as one chat completion, stored as the call's response."""
        message = {"role": "assistant", "content": "".join(self._parts)}
        choice = {"index": 0, "message": message, "finish_reason": self._finish_reason}
        return {**self._head, "object": "chat.completion", "choices": [choice], "usage": self._usage}

    def _succeed(self) -> None:
        if not self._over:
            self._over = True
            self._calls.record_success(self._attempt, self._usage, self._reply(), "".join(self._parts))

    def _fail(self, failure: Failure) -> None:
        if not self._over:
            self._over = True
            self._failure = failure
            self._calls.record(self._attempt.event("failure", failure=failure))

    async def _drain(self) -> None:
        """Read the answer to its end after ``[DONE]``: its connection then goes back to the pool."""
        if self._drained:
            return
        self._drained = True
        try:
            while await self._response.content.readany():
                pass
        except CONNECTION_ERRORS:
            self._response.close()
        else:
            self._response.release()

    async def aclose(self) -> None:
        self._over = True
        if not self._drained:
            self._response.close()
