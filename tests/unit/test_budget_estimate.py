"""The worst-case estimate of a call, input parsing, and the budget errors' one-line messages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from llmtally import BudgetExceeded, RateLimited, UserInputError
from llmtally import budgets as api

HELLO = [{"role": "user", "content": "hello hello hello"}]


def test_estimate_uses_max_tokens_then_the_map_then_the_default() -> None:
    given = api.estimate("gpt-4o-mini", HELLO, 20)
    assert (given.model, given.provider, given.prompt_tokens, given.completion_tokens) == (
        "gpt-4o-mini",
        "openai",
        10,
        20,
    )
    assert given.usd == Decimal("0.0000135") and given.send_max_tokens is None
    from_map = api.estimate("gpt-4o-mini", HELLO, None)
    assert from_map.completion_tokens == 16384 and from_map.send_max_tokens is None
    unknown = api.estimate("acme-internal-llm", HELLO, None, default_max_tokens=300)
    assert (unknown.completion_tokens, unknown.send_max_tokens, unknown.usd) == (300, 300, None)
    with pytest.raises(UserInputError, match="max_tokens"):
        api.estimate("gpt-4o-mini", HELLO, -1)


def test_parsing() -> None:
    assert api.parse_thresholds("50%, 80%,1") == [Decimal("0.5"), Decimal("0.8"), Decimal("1")]
    assert api.parse_thresholds(None) == [Decimal("0.5"), Decimal("0.8"), Decimal("1.0")]
    for bad in ("0", "x", "-10%"):
        with pytest.raises(UserInputError):
            api.parse_thresholds(bad)
    assert api.parse_period(" Weekly ") == "weekly"
    assert api.check_timezone("Asia/Kolkata") == "Asia/Kolkata"
    with pytest.raises(UserInputError, match="whole number"):
        api.parse_count("1.5", "--rpm")


def test_errors_are_one_line() -> None:
    resets = dt.datetime(2026, 1, 1, 5, tzinfo=dt.UTC)
    err = BudgetExceeded(
        limit=Decimal(1), spent=Decimal("0.9"), reserved=Decimal("0.05"), requested=Decimal("0.1"),
        resets_at=resets, period="daily",
    )  # fmt: skip
    assert str(err) == (
        "daily budget exceeded: spent $0.9 + reserved $0.05 + this call $0.1 > limit $1;"
        " resets at 2026-01-01 05:00:00+00:00"
    )
    tokens = BudgetExceeded(
        limit=100, spent=90, reserved=0, requested=30, resets_at=None, period="lifetime", unit="tokens"
    )
    assert "limit 100 tokens; resets never (lifetime budget)" in str(tokens)
    assert str(RateLimited(retry_after=12.34, kind="rpm", limit=5)) == (
        "rate limited: limit of 5 requests per minute reached; retry in 12.3 s"
    )
    for e in (err, tokens, RateLimited(retry_after=None, kind="tpm", limit=9)):
        assert "\n" not in str(e)
