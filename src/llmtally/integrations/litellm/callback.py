"""The SDK callback: a CustomLogger that turns each payload into a UsageEvent and queues it.

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
from urllib.parse import urlsplit

from litellm.integrations.custom_logger import CustomLogger

from llmtally.domain.events import Status, UsageEvent

log = logging.getLogger("llmtally.callback")

# Keys LiteLLM (and its Router) adds to litellm_params["metadata"] for its own bookkeeping: not the
# application's. The deployment, model group and API host are read from the standard logging object instead.
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
        # the Router's
        "_routing_request_tags",
        "api_base",
        "attempted_fallbacks",
        "attempted_retries",
        "deployment",
        "deployment_model_name",
        "kubernetes_pod_routing",
        "llm_api_timing_windows",
        "max_retries",
        "model_group",
        "model_group_alias",
        "model_group_size",
        "original_model_group",
        "request_retry_count",
    }
)


# Calls on a stored response (the Responses API's GET, DELETE, cancel, input items): no model is called
# and nothing is billed, but LiteLLM reports them, a retrieval with the stored response's usage (and
# cost) again. They are not recorded.
NOT_MODEL_CALLS = frozenset(
    {
        "aget_responses",
        "get_responses",
        "adelete_responses",
        "delete_responses",
        "acancel_responses",
        "cancel_responses",
        "alist_input_items",
        "list_input_items",
    }
)
# The metadata key that names the response a Responses API call made (its id as the client got it,
# LiteLLM's), set from the provider's response whatever the content mode; a caller's own is dropped.
RESPONSE_ID = "response_id"


def is_model_call(kwargs: Mapping[str, Any]) -> bool:
    """Whether a LiteLLM payload is of a call that asks a model (and may bill), not of a stored response."""
    call_type = kwargs.get("call_type")
    return str(getattr(call_type, "value", call_type)) not in NOT_MODEL_CALLS


def response_id(response_obj: Any) -> str | None:
    """The id of a Responses API response (``object: "response"``): LiteLLM's id, which encodes the
    deployment. None for anything else, a chat completion LiteLLM bridged to the Responses API included
    (the client's id is made from it later, and no provider stores it)."""
    if response_obj is None or _get(response_obj, "object") != "response":
        return None
    value = _get(response_obj, "id")
    return value if isinstance(value, str) and value else None


def _aware(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.astimezone()  # LiteLLM passes naive local times
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    return None


def _first_token_ms(
    kwargs: Mapping[str, Any], slo: Mapping[str, Any], start: dt.datetime, end: dt.datetime | None
) -> int | None:
    """A stream's milliseconds from the attempt's start to its first chunk (LiteLLM's completion_start_time).

    Without a chunk LiteLLM sets that time to the attempt's end (a stream served whole, from a cache
    for one): a first chunk always comes before the end, so that is no first token, and None.
    """
    first = _aware(kwargs.get("completion_start_time")) or _aware(slo.get("completionStartTime"))
    if first is None or (end is not None and first >= end):
        return None
    return max(0, int((first - start).total_seconds() * 1000))


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


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _usage_object(response_obj: Any, slo: Mapping[str, Any]) -> Any:
    usage = _get(response_obj, "usage") if response_obj is not None else None
    if usage is None and isinstance(slo.get("response"), Mapping):
        usage = slo["response"].get("usage")
    return usage


def token_types(usage: Any) -> tuple[int, int, int, int]:
    """(cached input, cache creation, reasoning, audio) tokens of a usage object, OpenAI's or Anthropic's."""
    if usage is None:
        return 0, 0, 0, 0
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    cached = _int(_get(prompt_details, "cached_tokens")) or _int(_get(usage, "cache_read_input_tokens"))
    creation = _int(_get(usage, "cache_creation_input_tokens"))
    reasoning = _int(_get(completion_details, "reasoning_tokens"))
    audio = _int(_get(prompt_details, "audio_tokens")) + _int(_get(completion_details, "audio_tokens"))
    return cached, creation, reasoning, audio


# A Responses API stream always ends with ``response.completed``, which carries the provider's usage.
_USAGE_ALWAYS_STREAMED = frozenset({"aresponses", "responses"})


def _include_usage(kwargs: Mapping[str, Any]) -> bool:
    call_type = kwargs.get("call_type")
    if str(getattr(call_type, "value", call_type)) in _USAGE_ALWAYS_STREAMED:
        return True
    for options in (kwargs.get("stream_options"), (kwargs.get("optional_params") or {}).get("stream_options")):
        if isinstance(options, Mapping) and options.get("include_usage"):
            return True
    return False


def api_host(api_base: Any) -> str | None:
    """Host and port of an api_base, without credentials or path."""
    if not api_base or not isinstance(api_base, str):
        return None
    try:
        parts = urlsplit(api_base if "//" in api_base else f"//{api_base}")
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not host:
        return None
    return f"{host}:{port}" if port else host


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
    app_metadata = {k: v for k, v in metadata.items() if k not in _LITELLM_METADATA and k != RESPONSE_ID}

    call_id = kwargs.get("litellm_call_id") or litellm_params.get("litellm_call_id") or slo.get("id")
    call_id = str(call_id) if call_id else f"llmtally-{uuid.uuid4()}"  # replays need an id
    provider = str(slo.get("custom_llm_provider") or litellm_params.get("custom_llm_provider") or "unknown")
    model = canonical_model(str(slo.get("model") or kwargs.get("model") or "unknown"), provider)
    # LiteLLM leaves standard_logging_object["end_user"] empty for SDK calls: `user` is in kwargs.
    end_user = kwargs.get("user") or litellm_params.get("user") or slo.get("end_user")
    success = status == "success"
    made = response_id(response_obj) if success else None
    if made is not None:
        app_metadata[RESPONSE_ID] = made
    prompt, completion, total = _usage(response_obj if success else None, slo)
    cached, creation, reasoning, audio = token_types(_usage_object(response_obj, slo) if success else None)

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
    cache_hit = success and bool(slo.get("cache_hit") or kwargs.get("cache_hit"))
    saved = slo.get("saved_cache_cost") if cache_hit else None
    stream = bool(kwargs.get("stream") or slo.get("stream"))
    first_token = _first_token_ms(kwargs, slo, start, end) if stream else None
    # A trace id LiteLLM was given (the Router and the Proxy set one for all attempts of a request)
    # groups attempts; one it made up for a single call does not, and then the call id does.
    # LiteLLM also copies metadata["trace_id"] or metadata["session_id"] into it when it was given none: such
    # an id spans every call of a conversation, not the attempts of one call, so it does not key a call.
    given_trace = litellm_params.get("litellm_trace_id")
    if given_trace is not None and given_trace in {metadata.get("trace_id"), metadata.get("session_id")}:
        given_trace = None

    return UsageEvent(
        litellm_call_id=call_id,
        model=model,
        provider=provider,
        status=status,
        user_profile_id=_str_or_none(app_metadata.get("user_profile_id")),
        end_user=_str_or_none(end_user),
        session_id=_str_or_none(app_metadata.get("session_id")),
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        reported_cost=cost if isinstance(cost, int | float) else None,
        messages=kwargs.get("messages") if kwargs.get("messages") is not None else slo.get("messages"),
        response=_response_content(response_obj, slo) if success else None,
        error=error,
        error_type=error_type,
        latency_ms=latency if latency is None or latency >= 0 else 0,
        first_token_ms=first_token,
        stream=stream,
        metadata=app_metadata,
        created_at=start,
        call_key=str(given_trace) if given_trace else call_id,
        attempt_key=f"{call_id}:{status}:{start.isoformat()}",
        trace_id=_str_or_none(slo.get("trace_id") or given_trace),
        model_group=_str_or_none(slo.get("model_group")),
        model_id=_str_or_none(slo.get("model_id")),
        api_base=api_host(slo.get("api_base") or litellm_params.get("api_base")),
        cache_hit=cache_hit,
        saved_cost=saved if isinstance(saved, int | float) and saved > 0 else None,
        # Without a usage chunk, a stream's tokens are LiteLLM's tokenizer count, not the provider's bill.
        usage_source="estimated" if success and stream and not cache_hit and not _include_usage(kwargs) else "provider",
        cached_tokens=cached,
        cache_creation_tokens=creation,
        reasoning_tokens=reasoning,
        audio_tokens=audio,
    )


def canonical_model(model: str, provider: str) -> str:
    """One name per model: a Router or the Proxy reports ``openai/gpt-4o-mini`` where the SDK reports
    ``gpt-4o-mini``; the provider prefix is in ``provider`` already."""
    prefix = f"{provider}/"
    return model[len(prefix) :] if provider and model.startswith(prefix) and len(model) > len(prefix) else model


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
            if isinstance(kwargs, Mapping) and not is_model_call(kwargs):
                return
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


def register(callback: LedgerCallback) -> None:
    """Add the callback to LiteLLM's callbacks: every call of the process is reported to it."""
    import litellm

    litellm.callbacks.append(callback)


def unregister(callback: LedgerCallback) -> None:
    """Remove the callback; LiteLLM copies callbacks into several internal lists on first use: leave none behind."""
    import litellm

    litellm.logging_callback_manager.remove_callback_from_all_lists(callback)


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
