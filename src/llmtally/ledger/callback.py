"""The LiteLLM adapter: a CustomLogger that turns each payload into a UsageEvent and queues it.

No SQL and no I/O here: the handlers run on LiteLLM's path (the caller's event loop, or its
logging thread for synchronous calls). LiteLLM swallows exceptions raised by callbacks, so every
handler catches its own and reports them on the ``llmtally`` logger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from llmtally.ledger.events import Status, UsageEvent

log = logging.getLogger("llmtally.callback")

# Keys LiteLLM adds to litellm_params["metadata"] for its own bookkeeping: not the application's.
_LITELLM_METADATA = frozenset(
    {
        "hidden_params",
        "model_info",
        "headers",
        "endpoint",
        "caching_groups",
        "previous_models",
        "litellm_api_version",
        "global_max_parallel_requests",
    }
)


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.astimezone()  # LiteLLM passes naive local times
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return None


def _int(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _usage(response_obj: Any, slo: Mapping[str, Any]) -> tuple[int, int, int | None]:
    if slo.get("prompt_tokens") is not None or slo.get("completion_tokens") is not None:
        total = slo.get("total_tokens")
        return _int(slo.get("prompt_tokens")), _int(slo.get("completion_tokens")), _int(total) if total else None
    usage = getattr(response_obj, "usage", None)
    if usage is None and isinstance(response_obj, Mapping):
        usage = response_obj.get("usage")
    if usage is None:
        return 0, 0, None

    def get(key: str) -> Any:
        return usage.get(key) if isinstance(usage, Mapping) else getattr(usage, key, None)

    total = get("total_tokens")
    return _int(get("prompt_tokens")), _int(get("completion_tokens")), _int(total) if total else None


def _response_content(response_obj: Any, slo: Mapping[str, Any]) -> Any:
    if slo.get("response"):
        return slo["response"]
    dump = getattr(response_obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            return repr(response_obj)
    return response_obj


def event_from_payload(
    kwargs: Mapping[str, Any], response_obj: Any, start_time: Any, end_time: Any, status: Status
) -> UsageEvent:
    """Build the typed event from what LiteLLM hands a callback."""
    litellm_params = kwargs.get("litellm_params") or {}
    slo: Mapping[str, Any] = kwargs.get("standard_logging_object") or {}
    metadata = dict(litellm_params.get("metadata") or {})
    app_metadata = {k: v for k, v in metadata.items() if k not in _LITELLM_METADATA}

    call_id = kwargs.get("litellm_call_id") or litellm_params.get("litellm_call_id") or slo.get("id")
    model = slo.get("model") or kwargs.get("model") or "unknown"
    provider = slo.get("custom_llm_provider") or litellm_params.get("custom_llm_provider") or "unknown"
    # LiteLLM leaves standard_logging_object["end_user"] empty for SDK calls: `user` is in kwargs.
    end_user = kwargs.get("user") or litellm_params.get("user") or slo.get("end_user")
    prompt, completion, total = _usage(response_obj if status == "success" else None, slo)

    error = error_type = None
    if status == "failure":
        exc = kwargs.get("exception")
        info = slo.get("error_information") or {}
        error_type = type(exc).__name__ if exc is not None else (info.get("error_class") or None)
        error = str(exc) if exc is not None else (slo.get("error_str") or "unknown error")

    start = _aware(start_time) or _aware(slo.get("startTime")) or dt.datetime.now(dt.UTC)
    end = _aware(end_time) or _aware(slo.get("endTime"))
    latency = int((end - start).total_seconds() * 1000) if end else None

    cost = kwargs.get("response_cost")
    if cost is None:
        cost = slo.get("response_cost")

    return UsageEvent(
        # Replays are idempotent only with an id: give one to a call that came without.
        litellm_call_id=str(call_id) if call_id else f"llmtally-{uuid.uuid4()}",
        model=str(model),
        provider=str(provider),
        status=status,
        user_profile_id=_str_or_none(app_metadata.get("user_profile_id")),
        end_user=_str_or_none(end_user),
        session_id=_str_or_none(app_metadata.get("session_id")),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        reported_cost=cost if isinstance(cost, int | float) else None,
        messages=kwargs.get("messages") if kwargs.get("messages") is not None else slo.get("messages"),
        response=_response_content(response_obj, slo) if status == "success" else None,
        error=error,
        error_type=error_type,
        latency_ms=latency if latency is None or latency >= 0 else 0,
        stream=bool(kwargs.get("stream") or slo.get("stream")),
        metadata=app_metadata,
        created_at=start,
    )


def _str_or_none(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class LedgerCallback(CustomLogger):  # type: ignore[misc]
    """Registered in ``litellm.callbacks`` by ``Ledger.start()``."""

    def __init__(self, sink: Callable[[UsageEvent], None]) -> None:
        super().__init__()
        self._sink = sink
        # LiteLLM de-duplicates callbacks by class name plus public str/int/bool attributes:
        # a distinct id keeps two ledgers in one process (e.g. two databases) both registered.
        self.ledger_id = uuid.uuid4().hex

    def _record(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any, status: Status) -> None:
        try:
            self._sink(event_from_payload(kwargs, response_obj, start_time, end_time, status))
        except Exception:  # LiteLLM would hide it: say it loudly ourselves
            call_id = kwargs.get("litellm_call_id") if isinstance(kwargs, Mapping) else None
            log.exception("llmtally could not record LiteLLM call %s", call_id)

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, "success")

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, "failure")

    def log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, "success")

    def log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._record(kwargs, response_obj, start_time, end_time, "failure")


async def drain_litellm_async_logging(timeout: float | None) -> None:
    """Let LiteLLM run every async callback it has queued (best effort, bounded by ``timeout``)."""
    await asyncio.sleep(0)  # success callbacks are scheduled as tasks that enqueue on their first step
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # a LiteLLM without the worker runs callbacks inline
        return
    try:
        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout)
    except TimeoutError:
        log.warning("LiteLLM's logging queue did not drain within %ss", timeout)


def wait_for_litellm_logging_threads(timeout: float | None) -> bool:
    """Wait until LiteLLM's logging thread pool (used for sync calls) has no pending task."""
    try:
        from litellm.litellm_core_utils.thread_pool_executor import executor
    except ImportError:
        return True
    slots = getattr(executor, "_pending_slots", None)
    capacity = getattr(executor, "_max_pending_tasks", None)
    if slots is None or capacity is None:
        return True
    deadline = None if timeout is None else time.monotonic() + timeout
    while getattr(slots, "_value", capacity) < capacity:
        if deadline is not None and time.monotonic() >= deadline:
            log.warning("LiteLLM's logging threads were still busy after %ss", timeout)
            return False
        time.sleep(0.005)
    return True
