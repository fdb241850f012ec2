"""The OpenAI-compatible API under /v1: chat completions (streamed or not), embeddings, the models.

Every request is authenticated by an ``lt_`` API token (``Authorization: Bearer lt_...``, checked against
the database on each request, so a revoked token is refused at once); the token's user is the user billed.
Every call goes through :class:`llmtally.Budgets`: the worst case is reserved before the upstream is asked,
LiteLLM's callback records each attempt (retries and fallbacks of the router included) and the ledger's
row settles the reservation; a stream the client leaves is recorded as cancelled with what it received.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from llmtally.api_tokens import PREFIX, TokenAccess, shown_prefix, token_access
from llmtally.app.gateway.errors import GatewayError, from_exception, install_error_handlers
from llmtally.app.gateway.requests import chat_request, embedding_request, json_body, request_tags
from llmtally.app.gateway.streaming import EventStreamResponse, sse_events
from llmtally.budgeted_calls import BudgetedStream, Budgets
from llmtally.db.database import Database
from llmtally.integrations.litellm.router import GatewayRouter

TAGS_HEADER = "x-llmtally-tags"
CREATED = 1_700_000_000  # the "created" time of every model in GET /v1/models (OpenAI's field; unknown here)


@dataclass(frozen=True)
class Gateway:
    """What the API needs: the database (keys), the budgets (reserve and record) and the router."""

    db: Database
    budgets: Budgets
    router: GatewayRouter


@dataclass(frozen=True)
class Caller:
    user_id: str
    token_prefix: str  # as `llmtally tokens list` shows it, stored with each call
    access: TokenAccess  # the models the key may use


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, message, code="invalid_api_key", headers={"www-authenticate": "Bearer"})


async def authenticate(gateway: Gateway, request: Request) -> Caller:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    credential = credential.strip()
    if not scheme:
        raise _unauthorized("you didn't provide an API key: send 'Authorization: Bearer lt_...' (llmtally tokens)")
    if scheme.lower() != "bearer" or not credential.startswith(PREFIX):
        raise _unauthorized("the Authorization header must be 'Bearer lt_...' with an llmtally API token")
    try:
        access = await asyncio.to_thread(token_access, gateway.db, credential)
    except Exception as exc:
        raise from_exception(exc) from None
    if access is None:
        raise _unauthorized("the API key is unknown, revoked or expired")
    return Caller(access.user_id, shown_prefix(credential), access)


def _models_of(gateway: Gateway, caller: Caller) -> list[str]:
    """The models this key may use: the router's, less those its allow-list leaves out."""
    return [name for name in gateway.router.model_names if caller.access.may_use(name)]


def _allowed_model(gateway: Gateway, caller: Caller, model: str) -> None:
    if model not in gateway.router.model_names or not caller.access.may_use(model):
        raise GatewayError(
            403,
            f"the model {model!r} is not available to this key (GET /v1/models lists the models it may use)",
            type="invalid_request_error",
            code="model_not_allowed",
            param="model",
        )


def _metadata(caller: Caller, tags: list[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"via": "gateway", "api_token": caller.token_prefix}
    if tags:
        metadata["tags"] = tags
    return metadata


def _model_entry(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": CREATED, "owned_by": "llmtally"}


def build_gateway(gateway: Gateway) -> FastAPI:
    """The /v1 app (mount it at /v1)."""
    api = FastAPI(title="llmtally gateway", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(api)
    router = gateway.router

    @api.get("/models")
    async def models(request: Request) -> Any:
        caller = await authenticate(gateway, request)
        return {"object": "list", "data": [_model_entry(name) for name in _models_of(gateway, caller)]}

    @api.get("/models/{model:path}")
    async def model(request: Request, model: str) -> Any:
        caller = await authenticate(gateway, request)
        if model not in _models_of(gateway, caller):
            raise GatewayError(404, f"the model {model!r} does not exist", code="model_not_found", param="model")
        return _model_entry(model)

    @api.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        caller = await authenticate(gateway, request)
        body = json_body(await request.body())
        chat = chat_request(body)
        tags = request_tags(body, request.headers.get(TAGS_HEADER))
        _allowed_model(gateway, caller, chat.model)
        passed: dict[str, Any] = dict(chat.parameters)
        if chat.stream:  # the upstream's own count of a stream, whatever the client asked
            passed["stream_options"] = {"include_usage": True}
        try:
            response = await gateway.budgets.acompletion(
                user_id=caller.user_id,
                model=chat.model,
                messages=chat.messages,
                max_tokens=chat.max_tokens,
                stream=chat.stream,
                metadata=_metadata(caller, tags),
                call=router.acompletion,
                billed_models=router.billed_models(chat.model),
                **passed,
            )
        except Exception as exc:
            raise from_exception(exc) from None
        if isinstance(response, BudgetedStream):
            return EventStreamResponse(sse_events(response, chat.include_usage))
        return JSONResponse(response.model_dump(mode="json"))

    @api.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        caller = await authenticate(gateway, request)
        body = json_body(await request.body())
        embedding = embedding_request(body)
        tags = request_tags(body, request.headers.get(TAGS_HEADER))
        _allowed_model(gateway, caller, embedding.model)
        try:
            response = await gateway.budgets.aembedding(
                user_id=caller.user_id,
                model=embedding.model,
                input=embedding.input,
                metadata=_metadata(caller, tags),
                call=router.aembedding,
                billed_models=router.billed_models(embedding.model),
                **embedding.parameters,
            )
        except Exception as exc:
            raise from_exception(exc) from None
        return JSONResponse(response.model_dump(mode="json"))

    return api
