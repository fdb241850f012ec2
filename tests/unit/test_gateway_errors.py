"""How the gateway tells a client about a failure: the status, OpenAI's error type and code, Retry-After."""

from __future__ import annotations

import litellm
import pytest
from litellm.types.router import RouterRateLimitError

from llmtally.app.gateway.errors import from_exception
from llmtally.errors import BudgetExceeded, DatabaseUnreachable, RateLimited


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (litellm.Timeout("slow", model="m", llm_provider="openai"), 504, "upstream_timeout"),
        (litellm.RateLimitError("busy", llm_provider="openai", model="m"), 429, "upstream_rate_limited"),
        (litellm.BadRequestError("too long", model="m", llm_provider="openai"), 400, "upstream_refused_request"),
        (litellm.AuthenticationError("bad key", llm_provider="openai", model="m"), 502, "upstream_auth_failed"),
        (litellm.InternalServerError("boom", llm_provider="openai", model="m"), 502, "upstream_failed"),
        (litellm.APIConnectionError("refused", llm_provider="openai", model="m"), 502, "upstream_failed"),
        (DatabaseUnreachable("nothing at 127.0.0.1:1"), 503, "database_unavailable"),
        (RuntimeError("a bug"), 500, "internal_error"),
    ],
)
def test_upstream_and_internal_failures(exc: Exception, status: int, code: str) -> None:
    error = from_exception(exc)
    assert (error.status, error.code) == (status, code)
    assert error.body()["error"]["message"] and "Traceback" not in error.message
    if isinstance(exc, RuntimeError):
        assert error.message == "internal error"  # a bug's details stay in the log


def test_every_deployment_cooling_down_is_503_with_retry_after() -> None:
    cooling = RouterRateLimitError(
        model="gpt-4o-mini", cooldown_time=4.2, enable_pre_call_checks=False, cooldown_list=[]
    )
    error = from_exception(cooling)
    assert (error.status, error.code, error.headers) == (503, "upstream_unavailable", {"retry-after": "5"})


def test_refusals_of_llmtally_itself() -> None:
    budget = from_exception(
        BudgetExceeded(limit=1, spent=1, reserved=0, resets_at=None, period="lifetime", requested=0.5)
    )
    assert (budget.status, budget.type, budget.headers) == (429, "budget_exceeded", {"x-should-retry": "false"})
    soon = from_exception(RateLimited(retry_after=0.2, limit=10))
    assert (soon.status, soon.code, soon.headers) == (429, "rate_limit_exceeded", {"retry-after": "1"})
    never = from_exception(RateLimited(retry_after=None, kind="tpm", limit=10))  # the call alone is over the limit
    assert never.headers == {"x-should-retry": "false"} and "this call alone" in never.message
