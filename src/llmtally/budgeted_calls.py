"""Budget- and rate-limit-checked LiteLLM calls: :class:`Budgets` wraps ``litellm.acompletion``::

    budgets = llmtally.Budgets(ledger)
    reply = await budgets.acompletion(user_id="google_1", model="gpt-4o-mini", messages=[...], max_tokens=500)

It reserves the call's worst case (:func:`llmtally.budgets.reserve`), makes the call with a fresh
``litellm_call_id``, and makes sure the call is recorded: LiteLLM's success and failure events, or
:meth:`Ledger.record_cancelled` for a cancelled call or an abandoned stream. The ledger's row of the
billed outcome settles the reservation; a call that fails for good (every retry and fallback) drops it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from llmtally.budgets import (
    Alert,
    BudgetStatus,
    Estimate,
    budget_status,
    deliver_alerts,
    estimate,
    release,
    reserve,
    settle_failed,
    webhook,
)
from llmtally.db.database import Database
from llmtally.domain.inputs import input_texts, prompt_messages, response_input_messages
from llmtally.errors import UserInputError
from llmtally.integrations.litellm import calls
from llmtally.ledger.ledger import Ledger

log = logging.getLogger("llmtally.budgets")

_T = TypeVar("_T")
_BACKGROUND: set[asyncio.Future[Any]] = set()  # releases still running after a cancelled reservation


class Budgets:
    """Budget- and rate-limit-checked LiteLLM calls, recorded by ``ledger``.

    ::

        async with llmtally.Ledger(url) as ledger:
            budgets = llmtally.Budgets(ledger)
            try:
                reply = await budgets.acompletion(user_id=user, model="gpt-4o-mini", messages=msgs, max_tokens=300)
            except llmtally.BudgetExceeded as exc:
                ...  # exc.limit, exc.spent, exc.reserved, exc.resets_at
            except llmtally.RateLimited as exc:
                ...  # exc.retry_after (seconds)
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        db: Database | None = None,
        ttl_s: int | None = None,
        default_max_tokens: int | None = None,
        on_alert: Callable[[Alert], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self._db = db
        self.ttl_s = ttl_s or ledger.settings.reservation_ttl_s
        self.default_max_tokens = default_max_tokens or ledger.settings.default_max_tokens
        url = ledger.settings.budget_webhook_url
        self.on_alert = on_alert or (webhook(url) if url else None)

    @property
    def db(self) -> Database:
        db = self._db or self.ledger.db
        if db is None:
            raise UserInputError(
                "budgets need a database connection: start the ledger with a database URL (not the Supabase API)"
            )
        return db

    async def reserve(
        self,
        user_id: str,
        model: str,
        messages: Any,
        *,
        max_tokens: int | None = None,
        call_id: str | None = None,
        billed_models: Sequence[str] = (),
        outputs: int = 1,
    ) -> tuple[str, Estimate]:
        """Reserve the worst case of a call; returns its litellm_call_id and the estimate.

        ``billed_models``: the LiteLLM models the call may be billed as (a router's deployments behind
        ``model``, its fallbacks); the dearest of them is reserved. Empty: ``model`` itself.
        ``outputs``: how many completions of up to ``max_tokens`` the call makes.
        """
        call_id = call_id or str(uuid.uuid4())
        est = self.estimate(model, messages, max_tokens=max_tokens, billed_models=billed_models, outputs=outputs)
        db = self.db
        await self.reserving(call_id, asyncio.to_thread(reserve, db, user_id, call_id, est, ttl_s=self.ttl_s))
        return call_id, est

    def estimate(
        self,
        model: str,
        messages: Any,
        *,
        max_tokens: int | None = None,
        billed_models: Sequence[str] = (),
        outputs: int = 1,
    ) -> Estimate:
        """The worst case of a call: the dearest of ``billed_models`` (empty: ``model``), see :meth:`reserve`."""
        return max(
            (
                estimate(m, messages, max_tokens, default_max_tokens=self.default_max_tokens, outputs=outputs)
                for m in (billed_models or (model,))
            ),
            key=lambda e: (e.usd is not None, e.usd or 0),
        )

    async def reserving(self, call_id: str, reservation: Awaitable[_T]) -> _T:
        """Await ``reservation`` (it reserves ``call_id``: a statement on the event loop, or a blocking
        one in a thread) and return what it returns. It runs as a task of its own: if the caller is
        cancelled meanwhile, the reservation may still commit, and it is released once it has (the call
        is never made)."""
        db = self.db
        pending = asyncio.ensure_future(reservation)
        try:
            return await asyncio.shield(pending)
        except asyncio.CancelledError:

            def release_when_done(done: asyncio.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    task = asyncio.ensure_future(asyncio.to_thread(release, db, call_id))
                    _BACKGROUND.add(task)
                    task.add_done_callback(_BACKGROUND.discard)

            pending.add_done_callback(release_when_done)
            raise

    async def status(self, user_id: str) -> list[BudgetStatus]:
        return await asyncio.to_thread(budget_status, self.db, user_id)

    async def deliver_alerts(self) -> int:
        """Pass new threshold alerts to the hook (``on_alert`` or ``LLMTALLY_BUDGET_WEBHOOK_URL``)."""
        if self.on_alert is None:
            return 0
        return await asyncio.to_thread(deliver_alerts, self.db, self.on_alert)

    async def acompletion(
        self,
        *,
        user_id: str,
        model: str,
        messages: list[dict[str, Any]],
        max_tokens: int | None = None,
        stream: bool = False,
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
        call: Callable[..., Awaitable[Any]] | None = None,
        billed_models: Sequence[str] = (),
        reserved: tuple[str, Estimate] | None = None,
        **kwargs: Any,
    ) -> Any:
        """``litellm.acompletion`` after a reservation; a stream comes back as a :class:`BudgetedStream`.

        ``call`` makes the call instead of ``litellm.acompletion`` (a LiteLLM Router's ``acompletion``), with
        the same arguments; ``billed_models`` are the models it may bill (see :meth:`reserve`).
        ``reserved``: the call id and estimate of a reservation already made for this call (the gateway
        reserves as it checks the key, :mod:`llmtally.admission`); then none is made here.
        """
        return await self._call(
            _Call(call or calls.acompletion, user_id, model, messages, max_tokens, "max_tokens", stream),
            metadata=metadata,
            session_id=session_id,
            billed_models=billed_models,
            request={"messages": messages, "stream": stream, **kwargs},
            reserved=reserved,
        )

    async def atext_completion(
        self,
        *,
        user_id: str,
        model: str,
        prompt: str | Sequence[Any],
        max_tokens: int | None = None,
        stream: bool = False,
        metadata: dict[str, Any] | None = None,
        call: Callable[..., Awaitable[Any]] | None = None,
        billed_models: Sequence[str] = (),
        outputs: int = 1,
        **kwargs: Any,
    ) -> Any:
        """``litellm.atext_completion`` (the legacy text completions) after a reservation of its prompts
        and ``outputs`` completions per prompt (``n``); a stream comes back as a :class:`BudgetedStream`."""
        messages = prompt_messages(prompt)
        return await self._call(
            _Call(call or calls.atext_completion, user_id, model, messages, max_tokens, "max_tokens", stream),
            metadata=metadata,
            billed_models=billed_models,
            outputs=len(messages) * outputs,
            request={"prompt": prompt, "stream": stream, **kwargs},
        )

    async def aresponses(
        self,
        *,
        user_id: str,
        model: str,
        input: str | Sequence[Any],
        instructions: str | None = None,
        max_output_tokens: int | None = None,
        stream: bool = False,
        metadata: dict[str, Any] | None = None,
        call: Callable[..., Awaitable[Any]] | None = None,
        billed_models: Sequence[str] = (),
        **kwargs: Any,
    ) -> Any:
        """``litellm.aresponses`` (the Responses API) after a reservation; a stream comes back as a
        :class:`BudgetedStream` of its events. The metadata goes to LiteLLM's ``litellm_metadata``:
        ``metadata`` is a parameter of the Responses API that the provider would store."""
        messages = response_input_messages(input, instructions)
        request: dict[str, Any] = {"input": input, **kwargs}
        if instructions is not None:
            request["instructions"] = instructions
        if stream:
            request["stream"] = True
        return await self._call(
            _Call(call or calls.aresponses, user_id, model, messages, max_output_tokens, "max_output_tokens", stream),
            metadata=metadata,
            metadata_param="litellm_metadata",
            billed_models=billed_models,
            request=request,
        )

    async def aembedding(
        self,
        *,
        user_id: str,
        model: str,
        input: str | Sequence[Any],
        metadata: dict[str, Any] | None = None,
        call: Callable[..., Awaitable[Any]] | None = None,
        billed_models: Sequence[str] = (),
        **kwargs: Any,
    ) -> Any:
        """``litellm.aembedding`` after a reservation of its input's tokens (an embedding has no output)."""
        as_messages = [{"role": "user", "content": text} for text in input_texts(input)]
        return await self._call(
            _Call(call or calls.aembedding, user_id, model, as_messages, 0, None, False),
            metadata=metadata,
            billed_models=billed_models,
            request={"input": input, **kwargs},
        )

    async def _call(
        self,
        what: _Call,
        *,
        metadata: dict[str, Any] | None,
        billed_models: Sequence[str],
        request: dict[str, Any],
        session_id: str | None = None,
        outputs: int = 1,
        metadata_param: str = "metadata",
        reserved: tuple[str, Estimate] | None = None,
    ) -> Any:
        """Reserve (unless ``reserved``), call, and make sure the call is recorded however it ends. A
        ``user`` in ``request`` is the call's end user (a team key's member); without one the billed user is."""
        named = request.pop("user", None)
        call_id, est = reserved or await self.reserve(
            what.user_id,
            what.model,
            what.messages,
            max_tokens=what.max_tokens,
            billed_models=billed_models,
            outputs=outputs,
        )
        meta = {**(metadata or {}), "user_profile_id": what.user_id}
        if session_id is not None:
            meta["session_id"] = session_id
        if what.max_tokens_param is not None:
            limit = what.max_tokens if what.max_tokens is not None else est.send_max_tokens
            if limit is not None:
                request[what.max_tokens_param] = limit
        started = dt.datetime.now(dt.UTC)
        # A call left before its end is recorded as the model it would have been billed as.
        recorded_as = billed_models[0] if billed_models else what.model
        cancelled = _Cancelled(
            self.ledger,
            self.db,
            recorded_as,
            list(what.messages),
            call_id,
            what.user_id,
            session_id,
            started,
            meta,
            what.stream,
            end_user=named,
        )
        try:
            response = await what.call(
                model=what.model,
                user=named or what.user_id,
                litellm_call_id=call_id,
                **{metadata_param: meta},
                **request,
            )
        except asyncio.CancelledError:
            cancelled.record("")
            raise
        except Exception:
            # Every retry and fallback failed: LiteLLM's failure events record the attempts; the
            # reservation goes now (a failed attempt alone does not settle it).
            await cancelled.failed()
            raise
        if what.stream:
            return BudgetedStream(response, cancelled)
        return response


@dataclass(frozen=True)
class _Call:
    call: Callable[..., Awaitable[Any]]
    user_id: str
    model: str
    messages: list[dict[str, Any]]  # the input as chat messages, to count its tokens
    max_tokens: int | None
    max_tokens_param: str | None  # the name of the output limit in this call's parameters
    stream: bool


@dataclass
class _Cancelled:
    ledger: Ledger
    db: Database
    model: str
    messages: Any
    call_id: str
    user_id: str
    session_id: str | None
    started: dt.datetime
    metadata: dict[str, Any]
    stream: bool
    end_user: str | None = None  # who is behind the call, when not the billed user (a team key's member)

    def record(self, partial: str, reason: str = "cancelled", first_chunk_at: dt.datetime | None = None) -> None:
        """Record the call as cancelled (idempotent: a LiteLLM event with the same id wins if first)."""
        try:
            meta = {k: v for k, v in self.metadata.items() if k not in ("user_profile_id", "session_id")}
            self.ledger.record_cancelled(
                model=self.model,
                messages=self.messages,
                partial_response=partial,
                litellm_call_id=self.call_id,
                user_profile_id=self.user_id,
                session_id=self.session_id,
                end_user=self.end_user,
                started_at=self.started,
                first_token_at=first_chunk_at,
                stream=self.stream,
                metadata={**meta, "reason": reason},
            )
        except Exception:
            log.exception("could not record cancelled call %s", self.call_id)

    async def failed(self) -> None:
        """The call failed for good: drop its reservation (it stays in the rate-limit window)."""
        try:
            await asyncio.to_thread(settle_failed, self.db, self.call_id)
        except Exception:  # the reservation then expires with its TTL
            log.exception("could not settle the reservation of failed call %s", self.call_id)


def chunk_text(chunk: Any) -> str | None:
    """The text a streamed chunk adds: a chat delta's content, a text completion's text, or a Responses
    API ``response.output_text.delta`` event's delta (or what a chunk passed on as the upstream sent it
    says it adds: ``streamed_text``)."""
    passed = getattr(chunk, "streamed_text", False)
    if passed is not False:
        return passed if isinstance(passed, str) else None
    choices = getattr(chunk, "choices", None)
    if choices:
        delta = getattr(choices[0], "delta", None)
        text = getattr(delta, "content", None) if delta is not None else getattr(choices[0], "text", None)
        return text if isinstance(text, str) else None
    kind = getattr(chunk, "type", None)
    if getattr(kind, "value", kind) == "response.output_text.delta":
        delta = getattr(chunk, "delta", None)
        return delta if isinstance(delta, str) else None
    return None


class BudgetedStream:
    """A LiteLLM stream that records itself as cancelled if it is not read to the end.

    Iterate it like LiteLLM's stream. Use it as ``async with`` (or call :meth:`aclose`) so a consumer
    that stops early, or is cancelled, settles the call to what was streamed.
    """

    def __init__(self, inner: Any, cancelled: _Cancelled) -> None:
        self._inner = inner
        self._cancelled = cancelled
        self._parts: list[str] = []
        self._finished = False
        self._recorded = False
        self._first_chunk_at: dt.datetime | None = None
        self.litellm_call_id = cancelled.call_id
        self.cancel_reason = "cancelled"  # the reason recorded when the consumer's task is cancelled mid-read

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            self._finished = True
            raise
        except asyncio.CancelledError:
            self.record_cancelled(self.cancel_reason)
            raise
        except Exception:
            self._finished = True  # a provider error: LiteLLM's failure event records the call
            await self._cancelled.failed()
            raise
        if self._first_chunk_at is None:
            self._first_chunk_at = dt.datetime.now(dt.UTC)
        text = chunk_text(chunk)
        if text:
            self._parts.append(text)
        return chunk

    def record_cancelled(self, reason: str = "cancelled") -> None:
        """Record the call as cancelled with what was streamed so far (once; nothing if it ended)."""
        if not self._finished and not self._recorded:
            self._recorded = True
            self._cancelled.record(self.text, reason, self._first_chunk_at)

    async def aclose(self, reason: str = "cancelled") -> None:
        """Stop reading: unless the stream ended, the call is recorded as cancelled with what was streamed."""
        self.record_cancelled(reason)
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # the provider's stream may already be gone
                log.debug("closing the stream of %s failed", self.litellm_call_id, exc_info=True)

    async def __aenter__(self) -> BudgetedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
