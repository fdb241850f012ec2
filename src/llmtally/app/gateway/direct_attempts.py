"""What a direct call of the gateway (:mod:`llmtally.app.gateway.direct`) is made of: its attempts and the
events that record them (the row LiteLLM's callback would write), how an attempt failed and what the client
is answered then, and the reply or chunks passed to the client as the upstream sent them."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from llmtally.app.gateway.errors import GatewayError, upstream_error
from llmtally.domain.events import Status, UsageEvent, UsageSource
from llmtally.integrations.litellm.callback import api_host, token_types
from llmtally.integrations.litellm.models import count_tokens
from llmtally.integrations.litellm.prices import LITELLM_PRICES
from llmtally.integrations.litellm.router import TIMED_OUT, DirectDeployment, status_failure

PROVIDER = "openai"
# Statuses the Router retries, or falls back from, for a model without fallbacks: the call goes on through it.
RETRIED = frozenset({408, 409, 429})
# LiteLLM's name of each failure (the attempt's error_type), by the upstream's status.
FAILURE_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}
ERROR_BODY_BYTES = 65_536  # of a failed answer, read for its message


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ms(start: dt.datetime, end: dt.datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


@dataclass(frozen=True)
class Failure:
    """How an attempt failed: the upstream's status (0 without an answer), LiteLLM's name for it, the message."""

    status: int
    name: str
    message: str
    retry_after: str | None = None

    def refused(self) -> bool:
        """The upstream refused the request itself: the Router would not try it again."""
        return 400 <= self.status < 500 and self.status not in RETRIED

    def answer(self) -> GatewayError:
        """The client's answer: what the Router's failure of the same status is told as."""
        status = TIMED_OUT if self.name == "Timeout" else self.status
        return upstream_error(status_failure(status, self.message, self.retry_after))


# What a failed or broken connection to the upstream raises (aiohttp's errors and its timeouts).
CONNECTION_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


async def failure_of(response: aiohttp.ClientResponse) -> Failure:
    """A failed answer's status, name and message (the upstream's ``error.message`` when it sent one)."""
    try:
        raw = await response.content.read(ERROR_BODY_BYTES)
    except CONNECTION_ERRORS:
        raw = b""
    finally:
        response.close()
    text = raw.decode("utf-8", "replace").strip()
    try:
        error = json.loads(text).get("error")
        message = str(error.get("message") if isinstance(error, Mapping) else error or text)
    except (ValueError, AttributeError):
        message = text
    status = response.status
    name = FAILURE_NAMES.get(status, "APIError" if status < 500 else "InternalServerError")
    line = (message.splitlines()[0] if message else "") or f"HTTP {status}"
    return Failure(status, name, f"{line[:500]} (HTTP {status})", response.headers.get("retry-after"))


def failure_of_exception(exc: BaseException) -> Failure:
    if isinstance(exc, asyncio.TimeoutError):
        return Failure(0, "Timeout", "the upstream did not answer in time")
    return Failure(0, "APIConnectionError", f"cannot reach the upstream: {type(exc).__name__} {exc}".strip())


@dataclass(frozen=True)
class DirectReply:
    """A chat completion as the upstream sent it (its JSON bytes, passed to the client unchanged)."""

    body: bytes


@dataclass(frozen=True)
class PassedChunk:
    """One streamed chunk as the upstream sent it: its JSON, and the text it adds."""

    raw: bytes
    parsed: dict[str, Any]
    streamed_text: str | None  # read by llmtally.budgeted_calls.chunk_text

    def data(self, include_usage: bool) -> bytes | None:
        """The event's JSON for a client; without ``include_usage``, no usage (and no usage chunk)."""
        if include_usage or "usage" not in self.parsed:
            return self.raw
        if not self.parsed.get("choices"):
            return None
        return json.dumps({k: v for k, v in self.parsed.items() if k != "usage"}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class PassedEvents:
    """The chunks of one read from the upstream, sent on to the client together, in one write."""

    chunks: tuple[PassedChunk, ...]

    @property
    def streamed_text(self) -> str | None:  # read by llmtally.budgeted_calls.chunk_text
        return "".join(c.streamed_text or "" for c in self.chunks) or None

    def sse(self, include_usage: bool) -> bytes:
        """The chunks as server-sent events (``data: {...}``), without the usage when not asked for."""
        datas = (c.data(include_usage) for c in self.chunks)
        return b"".join(b"data: " + data + b"\n\n" for data in datas if data is not None)


@dataclass
class Attempt:
    """One direct attempt of a call, and the event that records it."""

    deployment: DirectDeployment
    call_id: str
    metadata: dict[str, Any]
    messages: Any
    user: str | None
    stream: bool
    started: dt.datetime = field(default_factory=now)
    first_chunk_at: dt.datetime | None = None

    def event(
        self,
        status: Status,
        *,
        usage: Any = None,
        response: Any = None,
        text: str = "",
        failure: Failure | None = None,
        ended: dt.datetime | None = None,
    ) -> UsageEvent:
        end = ended or now()
        model = self.deployment.model
        source: UsageSource = "provider"
        if status == "success" and not isinstance(usage, Mapping):  # the upstream sent no usage: count it
            source = "estimated"
            prompt = count_tokens(model, messages=self.messages)
            usage = {"prompt_tokens": prompt, "completion_tokens": count_tokens(model, text=text) if text else 0}
        usage = usage if isinstance(usage, Mapping) else {}
        prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        cached, creation, reasoning, audio = token_types(usage)
        cost = None
        if status == "success":
            priced = LITELLM_PRICES.usage_cost(
                model,
                PROVIDER,
                prompt,
                completion,
                cached_tokens=cached,
                cache_creation_tokens=creation,
                reasoning_tokens=reasoning,
                audio_tokens=audio,
            )
            cost = float(priced) if priced is not None else None
        total = _count(usage.get("total_tokens")) or None
        first = self.first_chunk_at
        return UsageEvent(
            litellm_call_id=self.call_id,
            model=model,
            provider=PROVIDER,
            status=status,
            user_profile_id=_text(self.metadata.get("user_profile_id")),
            end_user=self.user or None,
            session_id=_text(self.metadata.get("session_id")),
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=total,
            reported_cost=cost,
            messages=self.messages,
            response=response if status == "success" else None,
            error=f"{failure.name}: {failure.message}" if failure is not None else None,
            error_type=failure.name if failure is not None else None,
            latency_ms=_ms(self.started, end),
            first_token_ms=_ms(self.started, first) if self.stream and first is not None and first < end else None,
            stream=self.stream,
            metadata=dict(self.metadata),
            created_at=self.started,
            call_key=self.call_id,
            attempt_key=f"{self.call_id}:{status}:{self.started.isoformat()}",
            trace_id=self.call_id,
            model_group=self.deployment.model_group,
            model_id=self.deployment.model_id,
            api_base=api_host(self.deployment.api_base),
            usage_source=source,
            cached_tokens=cached,
            cache_creation_tokens=creation,
            reasoning_tokens=reasoning,
            audio_tokens=audio,
        )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
