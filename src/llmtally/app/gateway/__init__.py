"""The OpenAI-compatible gateway: ``/v1`` in ``llmtally up``, and ``llmtally gateway`` alone (docs/gateway.md).

- ``api``: the /v1 routes, authentication by ``lt_`` API tokens, every call through :class:`llmtally.Budgets`;
- ``stored``: a stored response retrieved or deleted (``GET``/``DELETE /v1/responses/{id}``), its user's only;
- ``requests``: the request bodies, checked as OpenAI checks them;
- ``streaming``: server-sent events, and a client that leaves mid-stream recorded as cancelled;
- ``errors``: OpenAI-shaped errors with the status a client expects;
- ``server``: the gateway alone, without the chat (``llmtally gateway``).

Routing is LiteLLM's Router, configured by the file ``LLMTALLY_GATEWAY_CONFIG`` names
(:mod:`llmtally.integrations.litellm.router`).
"""

from llmtally.app.gateway.api import Gateway, build_gateway

__all__ = ["Gateway", "build_gateway"]
