"""The LiteLLM Proxy plug-in: ``litellm_settings: callbacks: llmtally.proxy.handler`` (docs/litellm-proxy.md).

The proxy loads ``handler`` from this module when it reads its config; that first access starts the
ledger (``LLMTALLY_DATABASE_URL``, else ``DATABASE_URL``, else the embedded database). One handler per
process is what LiteLLM's config format allows: it names a module attribute, not a factory.

Shutdown: uvicorn ends a SIGTERM'd proxy by raising the signal again once the app has stopped, so no
``atexit`` code runs. The handler therefore chains SIGTERM and SIGINT: at the signal it writes what is
queued (at most LLMTALLY_SHUTDOWN_TIMEOUT_S, blocking the loop, which only stops from then on), then passes
the signal on; calls still finishing during the proxy's drain are written before their callback returns,
which LiteLLM's drain waits for. What could not be written stays in the spool for the next start.

Calls are attributed to the proxy's authenticated identity (the key's user, team, key alias and the end
user, from the payload's ``user_api_key_*`` metadata), never to a ``user_profile_id`` the client sent.
Requests refused before any provider call write nothing; ``/health`` calls are tagged or skipped
(``LLMTALLY_PROXY_HEALTH_CHECKS``); of the proxy's bookkeeping only what a user would query is kept.
Budgets and rate limits (``LLMTALLY_PROXY_BUDGETS``, on by default): ``async_pre_call_hook`` reserves the
request's worst case for the key's user with llmtally's budgets (exact under concurrency, unlike a
check-then-act), and refuses with the error an OpenAI client expects: 429 with ``Retry-After`` for a rate
limit, 429 ``budget_exceeded`` (not to be retried) for a budget. The call's ledger row settles it, as on
the SDK path (a failed attempt keeps it for the retry or fallback that may follow; a request that fails
for the client settles it in the failure hook); a request refused after the reservation by a later hook
releases it.

A stream the client left before its end is recorded as ``cancelled`` with the tokens streamed until then:
LiteLLM reports it as a success counted by its tokenizer, so the stream hook notes the early end first.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import logging
import math
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from llmtally import budgets
from llmtally.domain.events import Status, UsageEvent
from llmtally.errors import BudgetExceeded, RateLimited
from llmtally.integrations.litellm.callback import RESPONSE_ID, event_from_payload, is_model_call
from llmtally.ledger.ledger import Ledger
from llmtally.settings import Settings

log = logging.getLogger("llmtally.proxy")

HEALTH_CHECK = "litellm-internal-health-check"  # LiteLLM's tag, team and key alias of its /health calls
# Keys of the client's own metadata the proxy adds, and ours, which a client may not set.
_NOT_CLIENT_METADATA = frozenset({"headers", "used_client_oauth_token", "user_profile_id"})
LEFT_EARLY_KEPT_S = 600  # how long a stream left early waits for LiteLLM's event of it
_OURS = frozenset(
    {"team_id", "team_alias", "key_alias", "org_id", "health_check", "client_ip", "route", "tags", RESPONSE_ID}
)


def _proxy_metadata(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata dict the proxy filled for this request (``metadata`` or, for some routes and the
    health checks, ``litellm_metadata``)."""
    params = kwargs.get("litellm_params") or {}
    merged: dict[str, Any] = {}
    for key in ("litellm_metadata", "metadata"):
        value = params.get(key)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def is_health_check(kwargs: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    slo = kwargs.get("standard_logging_object") or {}
    tags = list(slo.get("request_tags") or []) + list(metadata.get("tags") or [])
    return HEALTH_CHECK in tags or metadata.get("user_api_key_team_id") == HEALTH_CHECK


def proxy_event(
    kwargs: Mapping[str, Any],
    response_obj: Any,
    start_time: Any,
    end_time: Any,
    status: Status,
    settings: Settings,
) -> UsageEvent | None:
    """The event of one proxied attempt, attributed to the proxy's identity; None when nothing is recorded."""
    if kwargs.get("litellm_no_upstream_llm_call"):
        return None  # refused at the proxy's gate (a bad key, its own limits): no provider was asked
    if not is_model_call(kwargs):
        return None  # a stored response retrieved or deleted: nothing billed
    metadata = _proxy_metadata(kwargs)
    health = is_health_check(kwargs, metadata)
    if health and settings.proxy_health_checks == "skip":
        return None
    event = event_from_payload(kwargs, response_obj, start_time, end_time, status)
    requester = metadata.get("requester_metadata")
    client = requester if isinstance(requester, Mapping) else {}
    kept: dict[str, Any] = {k: v for k, v in client.items() if k not in _NOT_CLIENT_METADATA and k not in _OURS}
    identity = {
        "team_id": _text(metadata.get("user_api_key_team_id")),
        "team_alias": _text(metadata.get("user_api_key_team_alias")),
        "key_alias": _text(metadata.get("user_api_key_alias")),
        "org_id": _text(metadata.get("user_api_key_org_id")),
        "route": _text(metadata.get("user_api_key_request_route")),
    }
    kept.update({k: v for k, v in identity.items() if v is not None})
    if event.metadata.get(RESPONSE_ID):  # from the provider's response, never the client's metadata
        kept[RESPONSE_ID] = event.metadata[RESPONSE_ID]
    slo = kwargs.get("standard_logging_object") or {}
    tags = [t for t in slo.get("request_tags") or [] if isinstance(t, str)]
    if tags:
        kept["tags"] = tags
    if health:
        kept["health_check"] = True
    if settings.proxy_client_ip and metadata.get("requester_ip_address"):
        kept["client_ip"] = str(metadata["requester_ip_address"])
    user = None if health else _text(metadata.get("user_api_key_user_id"))
    end_user = _text(metadata.get("user_api_key_end_user_id")) or event.end_user
    # session_id is the client's word too: it maps to a user through the sessions table, so it is kept
    # only as metadata, never as the attribution column.
    return dataclasses.replace(event, user_profile_id=user, end_user=end_user, session_id=None, metadata=kept)


class ProxyHandler(CustomLogger):  # type: ignore[misc]
    """The proxy's callback: records each attempt through a ledger started for this process."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.ledger = Ledger(settings=self.settings, litellm_callback=False)
        self._lock = threading.Lock()
        self._started = False
        self._stopping = False
        self._known_users: set[str] = set()
        self._reserved: set[str] = set()  # call ids reserved here whose request may still be refused
        self._left_early: dict[str, float] = {}  # litellm_call_id -> when its client left the stream

    def start(self) -> ProxyHandler:
        with self._lock:
            if not self._started:
                self.ledger.start_sync()
                self._started = True
                atexit.register(self.close)
                self._chain_stop_signals()
                log.info("llmtally recording the proxy's calls to %s", self.ledger.settings.database_url or "embedded")
        return self

    def close(self) -> None:
        """Write what is queued (bounded by LLMTALLY_SHUTDOWN_TIMEOUT_S); the rest stays in the spool."""
        with self._lock:
            if self._started:
                self._started = False
                if not self.ledger.close_sync():
                    log.warning("llmtally: some proxied calls are left in the spool for the next start")

    def _chain_stop_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set signal handlers; atexit still drains a normal exit
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)

            def on_stop(number: int, frame: Any, previous: Any = previous) -> None:
                self._stopping = True
                if self._started and not self.ledger.flush_sync(self.settings.shutdown_timeout_s):
                    log.warning("llmtally: some proxied calls are left in the spool for the next start")
                if callable(previous):
                    previous(number, frame)
                elif previous != signal.SIG_IGN:  # the default action: end the process as it would have
                    signal.signal(number, signal.SIG_DFL)
                    signal.raise_signal(number)

            signal.signal(signum, on_stop)

    async def _written_if_stopping(self) -> None:
        """While the proxy stops, a call is written before its callback returns (LiteLLM waits for those)."""
        if self._stopping and self._started:
            await asyncio.to_thread(self.ledger.flush_sync, self.settings.shutdown_timeout_s)

    def _record(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any, status: Status) -> None:
        call_id = kwargs.get("litellm_call_id") if isinstance(kwargs, Mapping) else None
        try:
            if call_id in self._reserved:
                if kwargs.get("litellm_no_upstream_llm_call") and self.ledger.db is not None:
                    self._reserved.discard(call_id)
                    budgets.release(self.ledger.db, call_id)  # refused before any provider call: nothing to settle
                elif status != "failure":
                    self._reserved.discard(call_id)  # its row settles the reservation
                # a failed attempt keeps it: a retry or fallback may still be billed (see the failure hook)
            event = proxy_event(kwargs, response_obj, start_time, end_time, status, self.settings)
            if event is not None and status == "success" and self._left_early.pop(event.litellm_call_id, 0.0):
                event = dataclasses.replace(event, status="cancelled", usage_source="estimated")
            if event is not None:
                self.ledger.record(event)
        except Exception:  # LiteLLM would hide it
            log.exception("llmtally could not record proxied call %s", call_id)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, "success")
        await self._written_if_stopping()

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, "failure")
        await self._written_if_stopping()

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> Any:
        """Reserve the request's worst case for the key's user; refuse it as OpenAI would when it does not fit."""
        user = _text(getattr(user_api_key_dict, "user_id", None))
        messages = data.get("messages")
        if not self.settings.proxy_budgets or not user or not self._started or not isinstance(messages, list):
            return data
        try:
            data = await asyncio.to_thread(self._reserve, user, data)
        except RateLimited as exc:
            retry = max(1, math.ceil(exc.retry_after)) if exc.retry_after is not None else None
            raise _refusal(str(exc), "rate_limit_exceeded", {"retry-after": str(retry)} if retry else None) from None
        except BudgetExceeded as exc:
            raise _refusal(str(exc), "budget_exceeded", {"x-should-retry": "false"}) from None
        return data

    def _reserve(self, user: str, data: dict[str, Any]) -> dict[str, Any]:
        db = self.ledger.db
        if db is None:  # writing through Supabase's API: no reservation possible
            return data
        if user not in self._known_users:  # a reservation needs the user's profile row
            self.ledger.upsert_user_sync(user)
            self._known_users.add(user)
        max_tokens = data.get("max_tokens") or data.get("max_completion_tokens")
        est = max(
            (
                budgets.estimate(m, data["messages"], max_tokens, default_max_tokens=self.settings.default_max_tokens)
                for m in _deployment_models(str(data.get("model") or ""))
            ),
            key=lambda e: (e.usd is not None, e.usd or 0),  # the dearest deployment a retry or fallback may use
        )
        call_id = str(data.get("litellm_call_id") or "")
        if not call_id:
            call_id = data["litellm_call_id"] = str(uuid.uuid4())
        budgets.reserve(db, user, call_id, est, ttl_s=self.settings.reservation_ttl_s)
        self._reserved.add(call_id)
        if max_tokens is None and est.send_max_tokens is not None:
            data["max_tokens"] = est.send_max_tokens  # keep the reserved bound a bound
        return data

    async def async_post_call_failure_hook(
        self,
        request_data: dict[str, Any],
        original_exception: Exception,
        user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> None:
        """The request failed for the client (every retry and fallback): drop its reservation."""
        call_id = request_data.get("litellm_call_id") if isinstance(request_data, Mapping) else None
        if call_id not in self._reserved or self.ledger.db is None:
            return
        self._reserved.discard(call_id)
        try:
            await asyncio.to_thread(budgets.settle_failed, self.ledger.db, str(call_id))
        except Exception:  # it expires with its TTL
            log.exception("llmtally could not settle the reservation of failed call %s", call_id)

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """Pass the stream through; note a client that leaves before its end (the generator is closed)."""
        finished = False
        try:
            async for chunk in response:
                yield chunk
            finished = True
        finally:
            call_id = request_data.get("litellm_call_id")
            if not finished and call_id:
                now = time.monotonic()
                for stale in [k for k, at in self._left_early.items() if now - at > LEFT_EARLY_KEPT_S]:
                    self._left_early.pop(stale, None)
                self._left_early[str(call_id)] = now


def _deployment_models(model_group: str) -> list[str]:
    """The LiteLLM models behind one of the proxy's model names (the name itself if the router has none)."""
    try:
        from litellm.proxy.proxy_server import llm_router
    except ImportError:
        llm_router = None
    models: list[str] = []
    if llm_router is not None and model_group:
        for deployment in llm_router.get_model_list(model_name=model_group) or []:
            model = (deployment.get("litellm_params") or {}).get("model")
            if model:
                models.append(str(model))
    return models or [model_group]


def _refusal(message: str, kind: str, headers: dict[str, str] | None) -> Exception:
    """The proxy's OpenAI-shaped error: status 429, ``error.type`` = ``kind``, with these headers."""
    from litellm.proxy._types import ProxyException

    refusal: Exception = ProxyException(message=message, type=kind, param=None, code=429, headers=headers)
    return refusal


_handler: ProxyHandler | None = None
_handler_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``llmtally.proxy.handler``: created and started on first access (when the proxy loads its config)."""
    global _handler
    if name != "handler":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _handler_lock:
        if _handler is None:
            _handler = ProxyHandler().start()
        return _handler
