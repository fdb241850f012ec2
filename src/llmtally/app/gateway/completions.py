"""POST /v1/completions (the legacy text completions) and POST /v1/responses (the Responses API).

Both take the path of the chat completions: the key authenticated, its model allow-list checked, the
worst case reserved by :class:`llmtally.Budgets`, the call made by LiteLLM's Router and recorded by its
callback, a stream the client leaves recorded as cancelled.

- ``/completions`` is ``Router.atext_completion``: a ``text-completion-openai/`` model calls the
  provider's ``/completions``; a chat model (and the demo model) answers through its chat endpoint and
  LiteLLM turns the reply into a text completion. A stream always asks the upstream for its usage.
- ``/responses`` is ``Router.aresponses``: an ``openai/`` model calls ``{api_base}/responses``; LiteLLM
  bridges other providers (and the demo model) to their chat completions. Its usage
  (``input_tokens``/``output_tokens``) is recorded as prompt and completion tokens; a stream's last event
  (``response.completed``) carries it. A ``previous_response_id`` must name a response of the key's user
  (:mod:`llmtally.app.gateway.stored`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from llmtally.app.gateway.access import Gateway, authenticate, billed_call
from llmtally.app.gateway.errors import from_exception
from llmtally.app.gateway.requests import completion_request, json_body, responses_request
from llmtally.app.gateway.stored import check_previous_response
from llmtally.app.gateway.streaming import EventStreamResponse, response_events, sse_events
from llmtally.budgeted_calls import BudgetedStream


def add_completion_routes(api: FastAPI, gateway: Gateway) -> None:
    router = gateway.router

    @api.post("/completions")
    async def completions(request: Request) -> Response:
        caller = await authenticate(gateway, request)
        body = json_body(await request.body())
        completion = completion_request(body)
        billed = billed_call(gateway, caller, request, body, completion.model, router.atext_completion)
        passed: dict[str, Any] = dict(completion.parameters)
        if completion.stream:  # the upstream's own count of a stream, whatever the client asked
            passed["stream_options"] = {"include_usage": True}
        try:
            response = await gateway.budgets.atext_completion(
                **billed,
                prompt=completion.prompt,
                max_tokens=completion.max_tokens,
                stream=completion.stream,
                outputs=completion.n,
                **passed,
            )
        except Exception as exc:
            raise from_exception(exc) from None
        if isinstance(response, BudgetedStream):
            return EventStreamResponse(sse_events(response, completion.include_usage))
        return JSONResponse(response.model_dump(mode="json"))

    @api.post("/responses")
    async def responses(request: Request) -> Response:
        caller = await authenticate(gateway, request)
        body = json_body(await request.body())
        asked = responses_request(body)
        billed = billed_call(gateway, caller, request, body, asked.model, router.aresponses)
        if "previous_response_id" in asked.parameters:  # the model would read it: the key's user's only
            await check_previous_response(gateway, caller, asked.parameters["previous_response_id"])
        try:
            response = await gateway.budgets.aresponses(
                **billed,
                input=asked.input,
                instructions=asked.instructions,
                max_output_tokens=asked.max_output_tokens,
                stream=asked.stream,
                **asked.parameters,
            )
        except Exception as exc:
            raise from_exception(exc) from None
        if isinstance(response, BudgetedStream):
            return EventStreamResponse(response_events(response))
        return JSONResponse(response.model_dump(mode="json", exclude_none=True))
