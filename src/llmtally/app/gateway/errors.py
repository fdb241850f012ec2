"""Errors as the OpenAI API sends them: ``{"error": {"message", "type", "code", "param"}}`` with its status.

    401 invalid_api_key          no key, or not a valid, unrevoked, unexpired ``lt_`` API token
    403 model_not_allowed        the key may not use the model (``GET /v1/models`` lists those it may)
    429 rate_limit_exceeded      a per-user rate limit; ``Retry-After`` says when to try again
    429 budget_exceeded          a hard budget has no room for the call (``x-should-retry: false``)
    400 invalid_request_error    malformed JSON, a missing or mistyped parameter, a request the provider refused
    404 response_not_found       no stored response with that id for this key's user (GET/DELETE /v1/responses/{id})
    400 previous_response_not_found  a previous_response_id that no call of this key's user made
    404 / 405                    no such path or method under /v1
    502 upstream_failed          the provider failed after every retry and fallback
    503 upstream_unavailable     every deployment of the model is cooling down; ``Retry-After`` says for how long
    504 upstream_timeout         the provider did not answer in time
    503 database_unavailable     the ledger's database could not answer (nothing was called)

No client mistake is answered with a traceback: unexpected errors are logged and answered 500.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmtally.errors import BudgetExceeded, DatabaseError, LlmtallyError, RateLimited, UserInputError
from llmtally.integrations.litellm.router import UpstreamFailure, upstream_failure

log = logging.getLogger("llmtally.gateway")


class GatewayError(Exception):
    """An error answered to the client as OpenAI would answer it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def upstream_error(failure: UpstreamFailure) -> GatewayError:
    """An upstream's failure as the client gets it (with the upstream's Retry-After, if it gave one)."""
    headers = {"retry-after": failure.retry_after} if failure.retry_after else {}
    return GatewayError(failure.status, failure.message, type=failure.type, code=failure.code, headers=headers)


def from_exception(exc: BaseException) -> GatewayError:
    """The client's view of an error raised while serving a request."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, RateLimited):
        retry = str(max(1, math.ceil(exc.retry_after))) if exc.retry_after is not None else None
        return GatewayError(
            429,
            str(exc),
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": retry} if retry else {"x-should-retry": "false"},
        )
    if isinstance(exc, BudgetExceeded):
        return GatewayError(
            429, str(exc), type="budget_exceeded", code="budget_exceeded", headers={"x-should-retry": "false"}
        )
    if isinstance(exc, UserInputError):
        return bad_request(str(exc))
    if isinstance(exc, DatabaseError):
        log.error("gateway: the database could not answer: %s", exc)
        return GatewayError(
            503,
            "the usage database could not answer; nothing was called",
            type="server_error",
            code="database_unavailable",
        )
    failure = upstream_failure(exc)
    if failure is not None:
        return upstream_error(failure)
    if isinstance(exc, LlmtallyError):
        log.error("gateway: %s", exc)
        return GatewayError(500, str(exc), type="server_error", code="internal_error")
    log.error("gateway: unexpected error", exc_info=exc)
    return GatewayError(500, "internal error", type="server_error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway(_: Request, exc: GatewayError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return bad_request(f"invalid {where or 'request'}: {first.get('msg', 'bad value')}", where or None).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "no such endpoint under /v1", 405: "method not allowed for this endpoint"}
        message = messages.get(exc.status_code, str(exc.detail))
        return GatewayError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return from_exception(exc).response()
