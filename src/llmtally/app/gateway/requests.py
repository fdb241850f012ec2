"""The bodies of the gateway's requests, read and checked as the OpenAI API checks them.

Only parameters of the OpenAI API are passed on to the router, so a client cannot set LiteLLM's own
(``api_base``, ``api_key``, ``mock_response``, ``metadata``, ``litellm_call_id``, ...). The key's owner (a
user or a team) is billed; ``user`` is stored as the call's end user only for a key made with
``--end-users`` (see :func:`end_user`), and ignored otherwise. Other unknown parameters are ignored.

Tags: ``metadata.tags`` (an array of strings) and the ``x-llmtally-tags`` header (comma-separated) are stored
with the call (``request_logs.metadata.tags``); the rest of the client's ``metadata`` is not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from llmtally.app.gateway.errors import bad_request

# Parameters of POST /v1/chat/completions passed on as they are (stream, stream_options and the token
# limits are handled by the gateway).
CHAT_PARAMETERS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "seed",
        "service_tier",
        "stop",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
    }
)
EMBEDDING_PARAMETERS = frozenset({"dimensions", "encoding_format"})
# POST /v1/completions (the legacy text completions); best_of is left out (it bills completions the
# client never sees).
COMPLETION_PARAMETERS = frozenset(
    {"echo", "frequency_penalty", "logit_bias", "logprobs", "presence_penalty", "seed", "stop", "suffix"}
    | {"temperature", "top_p"}
)
# POST /v1/responses; background (a response to poll for later) and metadata (stored by the provider)
# are left out, as is conversation (a provider-side object the gateway cannot check).
RESPONSE_PARAMETERS = frozenset(
    {
        "include",
        "max_tool_calls",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt_cache_key",
        "reasoning",
        "service_tier",
        "store",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
    }
)


def json_body(raw: bytes) -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong with it."""
    if not raw.strip():
        raise bad_request("the request body is empty: send a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise bad_request(f"the request body is not valid JSON{where}") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("you must provide a model parameter (GET /v1/models lists them)", "model")
    return model


def _count(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise bad_request(f"{name} must be a whole number of zero or more (got {value!r})", name)
    return value


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{name} must be true or false (got {value!r})", name)
    return value


MAX_TAGS = 20
MAX_TAG_LENGTH = 64
MAX_END_USER_LENGTH = 256


def end_user(body: dict[str, Any], allowed: bool) -> dict[str, str]:
    """``{"user": ...}`` to pass on when the key may name its end user and the request does, else nothing."""
    value = body.get("user")
    if not allowed or value is None or value == "":
        return {}
    if not isinstance(value, str) or len(value) > MAX_END_USER_LENGTH or not value.isprintable():
        raise bad_request(f"user must be a printable string of at most {MAX_END_USER_LENGTH} characters", "user")
    return {"user": value}


def request_tags(body: dict[str, Any], header: str | None) -> list[str]:
    """The call's tags: ``metadata.tags`` then the ``x-llmtally-tags`` header's, each once, in order."""
    metadata = body.get("metadata")
    given = metadata.get("tags") if isinstance(metadata, dict) else None
    if given is not None and (not isinstance(given, list) or not all(isinstance(t, str) for t in given)):
        raise bad_request("metadata.tags must be an array of strings", "metadata.tags")
    tags = [t.strip() for t in [*(given or []), *(header or "").split(",")] if t.strip()]
    for tag in tags:
        if len(tag) > MAX_TAG_LENGTH or "\x00" in tag:
            raise bad_request(f"a tag must be at most {MAX_TAG_LENGTH} characters, without NUL", "metadata.tags")
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise bad_request(f"at most {MAX_TAGS} tags per call (got {len(unique)})", "metadata.tags")
    return unique


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    stream: bool
    include_usage: bool  # the client asked for the usage chunk (the upstream is always asked for it)
    parameters: dict[str, Any] = field(default_factory=dict)


def chat_request(body: dict[str, Any]) -> ChatRequest:
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array of messages", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(f"messages[{i}] must be an object with a role", f"messages[{i}]")
    max_tokens = _count(body, "max_completion_tokens")
    if max_tokens is None:
        max_tokens = _count(body, "max_tokens")
    stream, include_usage = _stream(body)
    parameters = {k: v for k, v in body.items() if k in CHAT_PARAMETERS and v is not None}
    return ChatRequest(model, messages, max_tokens, stream, include_usage, parameters)


@dataclass(frozen=True)
class EmbeddingRequest:
    model: str
    input: str | list[Any]
    parameters: dict[str, Any] = field(default_factory=dict)


def _token_array(value: Any) -> bool:
    return (
        isinstance(value, list) and bool(value) and all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    )


def _texts_or_tokens(body: dict[str, Any], name: str) -> str | list[Any]:
    value = body.get(name)
    valid = (isinstance(value, str) and value != "") or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(v, str) and v != "" for v in value)
            or _token_array(value)
            or all(_token_array(v) for v in value)
        )
    )
    if not valid:
        raise bad_request(f"{name} must be a non-empty string, an array of strings, or an array of token arrays", name)
    return cast("str | list[Any]", value)


def embedding_request(body: dict[str, Any]) -> EmbeddingRequest:
    model = _model(body)
    value = _texts_or_tokens(body, "input")
    parameters = {k: v for k, v in body.items() if k in EMBEDDING_PARAMETERS and v is not None}
    return EmbeddingRequest(model, value, parameters)


def _stream(body: dict[str, Any]) -> tuple[bool, bool]:
    """``stream``, and whether the client asked for the usage chunk (``stream_options.include_usage``)."""
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("stream_options must be an object", "stream_options")
    if options is not None and not stream:
        raise bad_request("stream_options is only allowed when stream is true", "stream_options")
    return stream, bool((options or {}).get("include_usage"))


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str | list[Any]
    max_tokens: int | None
    stream: bool
    include_usage: bool
    n: int  # completions per prompt
    parameters: dict[str, Any] = field(default_factory=dict)


def completion_request(body: dict[str, Any]) -> CompletionRequest:
    model = _model(body)
    prompt = _texts_or_tokens(body, "prompt")
    max_tokens = _count(body, "max_tokens")
    stream, include_usage = _stream(body)
    n = _count(body, "n")
    if n == 0:
        raise bad_request("n must be at least 1", "n")
    parameters = {k: v for k, v in body.items() if k in COMPLETION_PARAMETERS and v is not None}
    if n is not None:
        parameters["n"] = n
    return CompletionRequest(model, prompt, max_tokens, stream, include_usage, n or 1, parameters)


@dataclass(frozen=True)
class ResponsesRequest:
    model: str
    input: str | list[dict[str, Any]]
    instructions: str | None
    max_output_tokens: int | None
    stream: bool
    parameters: dict[str, Any] = field(default_factory=dict)


def responses_request(body: dict[str, Any]) -> ResponsesRequest:
    model = _model(body)
    value = body.get("input")
    if isinstance(value, list):
        if not value:
            raise bad_request("input must be a non-empty string or a non-empty array of input items", "input")
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise bad_request(f"input[{i}] must be an object (a message or another input item)", f"input[{i}]")
    elif not isinstance(value, str) or value == "":
        raise bad_request("input must be a non-empty string or a non-empty array of input items", "input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("instructions must be a string", "instructions")
    max_output_tokens = _count(body, "max_output_tokens")
    stream = _flag(body, "stream")
    parameters = {k: v for k, v in body.items() if k in RESPONSE_PARAMETERS and v is not None}
    return ResponsesRequest(model, value, instructions, max_output_tokens, stream, parameters)
