"""The OpenAI-compatible API under /v1: chat completions (streamed or not), embeddings, the models;
text completions and the Responses API are in :mod:`llmtally.app.gateway.completions`, a stored
response retrieved or deleted in :mod:`llmtally.app.gateway.stored`.

Every request is authenticated by an ``lt_`` API token (:mod:`llmtally.app.gateway.access`); the token's
user is the user billed. Every call goes through :class:`llmtally.Budgets`: the worst case is reserved
before the upstream is asked, LiteLLM's callback records each attempt (retries and fallbacks of the router
included; the gateway itself for a direct call, :mod:`llmtally.app.gateway.direct`) and the ledger's row
settles the reservation; a stream the client leaves is recorded as cancelled with what it received.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from llmtally.app.gateway.access import Gateway, authenticate, billed_call, models_of
from llmtally.app.gateway.chat import chat_completion
from llmtally.app.gateway.completions import add_completion_routes
from llmtally.app.gateway.errors import GatewayError, from_exception, install_error_handlers
from llmtally.app.gateway.requests import embedding_request, json_body
from llmtally.app.gateway.stored import add_stored_response_routes

__all__ = ["CREATED", "Gateway", "build_gateway"]

CREATED = 1_700_000_000  # the "created" time of every model in GET /v1/models (OpenAI's field; unknown here)


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
        return {"object": "list", "data": [_model_entry(name) for name in models_of(gateway, caller)]}

    @api.get("/models/{model:path}")
    async def model(request: Request, model: str) -> Any:
        caller = await authenticate(gateway, request)
        if model not in models_of(gateway, caller):
            raise GatewayError(404, f"the model {model!r} does not exist", code="model_not_found", param="model")
        return _model_entry(model)

    @api.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await chat_completion(gateway, request)  # served by the ChatCompletions layer in front

    @api.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        caller = await authenticate(gateway, request)
        body = json_body(await request.body())
        embedding = embedding_request(body)
        billed = billed_call(gateway, caller, request, body, embedding.model, router.aembedding)
        try:
            response = await gateway.budgets.aembedding(**billed, input=embedding.input, **embedding.parameters)
        except Exception as exc:
            raise from_exception(exc) from None
        return JSONResponse(response.model_dump(mode="json"))

    add_completion_routes(api, gateway)
    add_stored_response_routes(api, gateway)
    return api
