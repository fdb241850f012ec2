"""A chat completion admitted: its key checked and its worst case reserved, in one statement when it can be.

Every call checks its key and reserves its budget before the upstream is asked. A chat completion whose
request is valid, for a model the gateway serves, does both in one statement (:func:`access.admit`, one
round trip, on the event loop). Any other (bad JSON, a bad field, an unknown model) is checked the
way every other route checks: the key first (401 before 400 or 403), then the request, then the
reservation, so a client gets the same answer either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from llmtally.app.gateway.access import (
    TAGS_HEADER,
    Gateway,
    admit,
    authenticate,
    bearer_credential,
    billed_call,
    call_metadata,
)
from llmtally.app.gateway.requests import ChatRequest, chat_request, end_user, json_body, request_tags
from llmtally.budgets import Estimate


@dataclass(frozen=True)
class AdmittedChat:
    chat: ChatRequest
    billed: dict[str, Any]  # what :func:`access.billed_call` gives: the user billed, the metadata, the call
    reserved: tuple[str, Estimate] | None  # the call id and estimate reserved; None: Budgets reserves


def _call_of(gateway: Gateway, chat: ChatRequest) -> Callable[..., Awaitable[Any]]:
    direct = gateway.direct.chat_call(chat.model, chat.parameters) if gateway.direct is not None else None
    return direct or gateway.router.acompletion


@dataclass(frozen=True)
class _Prepared:
    chat: ChatRequest
    tags: list[str]
    end_user: dict[str, str]
    billed_models: tuple[str, ...]
    estimate: Estimate


def _prepared(gateway: Gateway, request: Request, raw: bytes) -> _Prepared | None:
    """What the one-statement admission needs, when nothing in the request is wrong; else None."""
    try:
        body = json_body(raw)
        chat = chat_request(body)
        if chat.model not in gateway.router.model_names:
            return None
        billed_models = gateway.router.billed_models(chat.model)
        tags = request_tags(body, request.headers.get(TAGS_HEADER))
        named = end_user(body, True)  # its form is checked whether or not the key may name one
        budgets = gateway.budgets
        est = budgets.estimate(chat.model, chat.messages, max_tokens=chat.max_tokens, billed_models=billed_models)
        return _Prepared(chat, tags, named, billed_models, est)
    except Exception:  # whatever is wrong is said after the key is checked
        return None


async def admitted_chat(gateway: Gateway, request: Request) -> AdmittedChat:
    credential = bearer_credential(request)
    raw = await request.body()
    ready = _prepared(gateway, request, raw)
    if ready is None:
        caller = await authenticate(gateway, request)
        body = json_body(raw)
        chat = chat_request(body)
        billed = billed_call(gateway, caller, request, body, chat.model, _call_of(gateway, chat))
        return AdmittedChat(chat, billed, None)
    call_id = str(uuid.uuid4())
    caller = await admit(gateway, credential, ready.chat.model, call_id, ready.estimate)
    billed = {
        "user_id": caller.user_id,
        "model": ready.chat.model,
        "metadata": call_metadata(caller, ready.tags),
        "call": _call_of(gateway, ready.chat),
        "billed_models": ready.billed_models,
        **(ready.end_user if caller.access.end_users else {}),
    }
    return AdmittedChat(ready.chat, billed, (call_id, ready.estimate))
