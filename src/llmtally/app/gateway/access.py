"""Who is calling and what they may call: ``lt_`` API tokens, each key's models, the metadata of a call.

Every request is authenticated by an ``lt_`` API token (``Authorization: Bearer lt_...``, checked against
the database on each request, so a revoked token is refused at once); the token's user is the user billed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from llmtally.admission import admit_keyed_call
from llmtally.api_tokens import PREFIX, TokenAccess, shown_prefix, token_access
from llmtally.app.gateway.direct import DirectCalls
from llmtally.app.gateway.errors import GatewayError, from_exception
from llmtally.app.gateway.requests import end_user, request_tags
from llmtally.budgeted_calls import Budgets
from llmtally.budgets import Estimate
from llmtally.db.database import Database
from llmtally.db.statements import StatementPool
from llmtally.integrations.litellm.http_client import close_connections
from llmtally.integrations.litellm.router import GatewayRouter

TAGS_HEADER = "x-llmtally-tags"


@dataclass(frozen=True)
class Gateway:
    """What the API needs: the database (keys), the budgets (reserve and record), the router, and the
    statements run on the event loop."""

    db: Database
    budgets: Budgets
    router: GatewayRouter
    statements: StatementPool  # the key check and reservation of a chat completion, on the event loop
    direct: DirectCalls | None = None  # chat completions sent to OpenAI-compatible upstreams without the Router

    async def aclose(self) -> None:
        """At shutdown, on the server's event loop: the connections to the upstreams and the statements'."""
        if self.direct is not None:
            await self.direct.aclose()
        await close_connections()
        await self.statements.aclose()


@dataclass(frozen=True)
class Caller:
    user_id: str
    token_prefix: str  # as `llmtally tokens list` shows it, stored with each call
    access: TokenAccess  # the models the key may use


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key", headers={"www-authenticate": "Bearer"})


_UNKNOWN_KEY = "the API key is unknown, revoked or expired"


def bearer_credential(request: Request) -> str:
    """The ``lt_`` key of ``Authorization: Bearer lt_...``; 401 when it is missing or not one."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if not scheme:
        raise _unauthorized("you didn't provide an API key: send 'Authorization: Bearer lt_...' (llmtally tokens)")
    if scheme.lower() != "bearer" or not credential.startswith(PREFIX):
        raise _unauthorized("the Authorization header must be 'Bearer lt_...' with an llmtally API token")
    return credential


async def authenticate(gateway: Gateway, request: Request) -> Caller:
    credential = bearer_credential(request)
    try:
        access = await asyncio.to_thread(token_access, gateway.db, credential)
    except Exception as exc:
        raise from_exception(exc) from None
    if access is None:
        raise _unauthorized(_UNKNOWN_KEY)
    return Caller(access.user_id, shown_prefix(credential), access)


async def admit(gateway: Gateway, credential: str, model: str, call_id: str, est: Estimate) -> Caller:
    """Check the key and reserve the call in one statement (:mod:`llmtally.admission`): 401 for a key
    that is not valid, 403 for a model outside its allow-list (nothing reserved either way), 402 or 429
    when the budget or a rate limit refuses the call."""
    admitting = admit_keyed_call(gateway.statements, credential, model, call_id, est, ttl_s=gateway.budgets.ttl_s)
    try:
        admission = await gateway.budgets.reserving(call_id, admitting)
    except Exception as exc:
        raise from_exception(exc) from None
    if admission.access is None:
        raise _unauthorized(_UNKNOWN_KEY)
    if not admission.reserved:
        raise _model_not_allowed(model)
    return Caller(admission.access.user_id, shown_prefix(credential), admission.access)


def models_of(gateway: Gateway, caller: Caller) -> list[str]:
    """The models this key may use: the router's, less those its allow-list leaves out."""
    return [name for name in gateway.router.model_names if caller.access.may_use(name)]


def _model_not_allowed(model: str) -> GatewayError:
    return GatewayError(
        403,
        f"the model {model!r} is not available to this key (GET /v1/models lists the models it may use)",
        type="invalid_request_error",
        code="model_not_allowed",
        param="model",
    )


def allowed_model(gateway: Gateway, caller: Caller, model: str) -> None:
    if model not in gateway.router.model_names or not caller.access.may_use(model):
        raise _model_not_allowed(model)


def call_metadata(caller: Caller, tags: list[str]) -> dict[str, Any]:
    """What is stored with the call: that it came through the gateway, the key's prefix, the tags."""
    metadata: dict[str, Any] = {"via": "gateway", "api_token": caller.token_prefix}
    if tags:
        metadata["tags"] = tags
    return metadata


def billed_call(
    gateway: Gateway, caller: Caller, request: Request, body: dict[str, Any], model: str, call: Any
) -> dict[str, Any]:
    """What every call route passes to :class:`llmtally.Budgets`: who is billed, the call's metadata (its
    tags), the router's method, the models it may bill, and the end user when the key may name one.
    Refuses bad tags (400) and a model outside the key's allow-list (403) before anything is reserved."""
    tags = request_tags(body, request.headers.get(TAGS_HEADER))
    allowed_model(gateway, caller, model)
    return {
        "user_id": caller.user_id,
        "model": model,
        "metadata": call_metadata(caller, tags),
        "call": call,
        "billed_models": gateway.router.billed_models(model),
        **end_user(body, caller.access.end_users),
    }
