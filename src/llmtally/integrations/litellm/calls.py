"""The LiteLLM calls llmtally makes itself (the Budgets wrapper, the demos) and the kinds of their errors.

Every ``litellm.acompletion`` (and ``aembedding``, ``atext_completion``, ``aresponses``) of llmtally goes
through this module, so its callers name no LiteLLM type. LiteLLM is imported at the first call, not when
this module is.
"""

from __future__ import annotations

from typing import Any, Literal

ProviderErrorKind = Literal["authentication", "rate_limit", "timeout", "bad_request"]


async def acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion(**kwargs)``: the response, or the stream when ``stream=True``."""
    import litellm

    return await litellm.acompletion(**kwargs)


async def atext_completion(**kwargs: Any) -> Any:
    """``litellm.atext_completion(**kwargs)`` (the legacy text completions)."""
    import litellm

    return await litellm.atext_completion(**kwargs)


async def aresponses(**kwargs: Any) -> Any:
    """``litellm.aresponses(**kwargs)`` (the Responses API)."""
    import litellm

    return await litellm.aresponses(**kwargs)


async def aembedding(**kwargs: Any) -> Any:
    """``litellm.aembedding(**kwargs)``."""
    import litellm

    return await litellm.aembedding(**kwargs)


def quiet() -> None:
    """Stop LiteLLM printing its debugging hints on errors (the terminal demo prints its own table)."""
    import litellm

    litellm.suppress_debug_info = True


def rate_limit_error(message: str, *, provider: str, model: str) -> Exception:
    """The error LiteLLM raises for a provider's rate limit (as a ``mock_response``, it is raised as it is)."""
    import litellm

    error: Exception = litellm.RateLimitError(message, llm_provider=provider, model=model)
    return error


def provider_error_kind(exc: BaseException) -> ProviderErrorKind | None:
    """What kind of provider error LiteLLM raised, or None for any other error."""
    import litellm

    if isinstance(exc, litellm.AuthenticationError):
        return "authentication"
    if isinstance(exc, litellm.RateLimitError):
        return "rate_limit"
    if isinstance(exc, litellm.Timeout):
        return "timeout"
    if isinstance(exc, litellm.NotFoundError | litellm.BadRequestError):
        return "bad_request"
    return None
