"""GET and DELETE /v1/responses/{response_id}: a stored response, retrieved or deleted at its provider, and
GET /v1/responses/{response_id}/input_items, what it was asked.

Isolation first: a key reaches only the responses made by calls billed to its own user (or team), and
the database says which those are before the provider is asked. The LiteLLM callback stores the id of
each response in its call's ``metadata.response_id`` (the id as the client got it), whatever the content
mode, so the owner is known even when the response's content is not stored, cut, masked or cleared by
retention. The lookup runs as the key's user, under row-level security. An id of another user's
response and an id nobody made get the same 404: the answer says nothing about other users.

The request then goes to the deployment that made the response: LiteLLM's Router gave the response an id
that encodes its deployment, and ``Router.aget_responses``, ``adelete_responses`` and
``alist_input_items`` decode it. Nothing is reserved or recorded for them: no model is called and nothing
is billed (the callback skips these calls).

``previous_response_id`` in ``POST /v1/responses`` is held to the same rule: it would let the model read
the earlier response, so another user's id is refused (400, as OpenAI refuses an unknown one).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from llmtally.app.gateway.access import Caller, Gateway, authenticate
from llmtally.app.gateway.errors import GatewayError, bad_request, from_exception
from llmtally.db.queries import query
from llmtally.integrations.litellm.router import is_not_found

MAX_RESPONSE_ID_LENGTH = 1024
MAX_INCLUDES = 20
MAX_INCLUDE_LENGTH = 100
MAX_ITEMS_PAGE = 100  # OpenAI's largest page of input items


def _not_found(message: str) -> GatewayError:
    return GatewayError(404, message, code="response_not_found", param="response_id")


def _checked_id(response_id: Any, param: str) -> str:
    if (
        not isinstance(response_id, str)
        or not response_id
        or len(response_id) > MAX_RESPONSE_ID_LENGTH
        or not response_id.isprintable()
    ):
        raise bad_request(f"{param} must be a response id (at most {MAX_RESPONSE_ID_LENGTH} characters)", param)
    return response_id


async def owned_response(gateway: Gateway, caller: Caller, response_id: str) -> bool:
    """Whether a call billed to the key's user (or team) made the response ``response_id``."""
    params = {"user_id": caller.user_id, "response_id": response_id}
    try:
        rows = await asyncio.to_thread(
            gateway.db.fetch_all_as_user, caller.user_id, query("gateway_owned_response"), params
        )
    except Exception as exc:
        raise from_exception(exc) from None
    return bool(rows)


async def check_previous_response(gateway: Gateway, caller: Caller, previous: Any) -> None:
    """Refuse a ``previous_response_id`` that no call billed to the key's user made (400, as OpenAI's)."""
    previous = _checked_id(previous, "previous_response_id")
    if not await owned_response(gateway, caller, previous):
        raise GatewayError(
            400,
            f"previous response with id {previous!r} not found for this key",
            code="previous_response_not_found",
            param="previous_response_id",
        )


async def _check_reachable(gateway: Gateway, caller: Caller, response_id: str) -> None:
    """A 404 unless the key's user made the response and the deployment that made it is still configured."""
    _checked_id(response_id, "response_id")
    if not await owned_response(gateway, caller, response_id):
        raise _not_found(f"no response with id {response_id!r} for this key (its user or team made none)")
    if gateway.router.response_model(response_id) is None:
        raise _not_found(
            f"the response {response_id!r} was made by a deployment that is no longer in the gateway's config"
        )


def _upstream_error(exc: BaseException, response_id: str) -> GatewayError:
    if is_not_found(exc):
        return _not_found(f"the provider has no response {response_id!r} (deleted, expired, or made with store: false)")
    return from_exception(exc)


def _includes(request: Request) -> list[str]:
    """``include`` (``include[]=...`` from the SDKs), checked; a stream of the stored response is refused."""
    if request.query_params.get("stream", "false").lower() not in ("false", "0"):
        raise bad_request("streaming a stored response is not supported: retrieve it whole", "stream")
    values = request.query_params.getlist("include") + request.query_params.getlist("include[]")
    if len(values) > MAX_INCLUDES or any(not v or len(v) > MAX_INCLUDE_LENGTH for v in values):
        raise bad_request(
            f"include takes at most {MAX_INCLUDES} names of at most {MAX_INCLUDE_LENGTH} characters", "include"
        )
    return values


def _page(request: Request) -> dict[str, Any]:
    """The page of input items asked for: OpenAI's ``limit`` (1 to 100, default 20), ``order``
    (``desc`` by default), ``after`` and ``before`` (item ids), checked; ``include`` as for a retrieval."""
    query = request.query_params
    page: dict[str, Any] = {}
    limit = query.get("limit")
    if limit is not None:
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_ITEMS_PAGE:
            raise bad_request(f"limit must be a whole number from 1 to {MAX_ITEMS_PAGE}", "limit")
        page["limit"] = int(limit)
    order = query.get("order")
    if order is not None:
        if order not in ("asc", "desc"):
            raise bad_request("order must be 'asc' or 'desc'", "order")
        page["order"] = order
    for name in ("after", "before"):
        value = query.get(name)
        if value is not None:
            if not value or len(value) > MAX_RESPONSE_ID_LENGTH or not value.isprintable():
                raise bad_request(f"{name} must be an item id (at most {MAX_RESPONSE_ID_LENGTH} characters)", name)
            page[name] = value
    include = _includes(request)
    if include:
        page["include"] = include
    return page


def add_stored_response_routes(api: FastAPI, gateway: Gateway) -> None:
    router = gateway.router

    # Before the retrieval's route, whose ``:path`` would take ``/input_items`` as part of the id
    @api.get("/responses/{response_id:path}/input_items")
    async def response_input_items(request: Request, response_id: str) -> Response:
        caller = await authenticate(gateway, request)
        page = _page(request)
        await _check_reachable(gateway, caller, response_id)
        try:
            items = await router.alist_input_items(response_id, **page)
        except Exception as exc:
            raise _upstream_error(exc, response_id) from None
        return JSONResponse(items if isinstance(items, dict) else items.model_dump(mode="json", exclude_none=True))

    # ``:path``: LiteLLM's ids are base64, whose "/" a client sends as %2F (decoded before routing)
    @api.get("/responses/{response_id:path}")
    async def retrieve_response(request: Request, response_id: str) -> Response:
        caller = await authenticate(gateway, request)
        include = _includes(request)
        await _check_reachable(gateway, caller, response_id)
        try:
            response = await router.aget_responses(response_id, include=include or None)
        except Exception as exc:
            raise _upstream_error(exc, response_id) from None
        return JSONResponse(response.model_dump(mode="json", exclude_none=True))

    @api.delete("/responses/{response_id:path}")
    async def delete_response(request: Request, response_id: str) -> Response:
        caller = await authenticate(gateway, request)
        await _check_reachable(gateway, caller, response_id)
        try:
            deleted = await router.adelete_responses(response_id)
        except Exception as exc:
            raise _upstream_error(exc, response_id) from None
        # the provider names the response by its own id; the client knows it by LiteLLM's
        return JSONResponse({"id": response_id, "object": "response", "deleted": bool(deleted.deleted)})
