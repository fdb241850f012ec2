"""The cost rules (llmtally.domain.cost) take their prices from a PriceMap: any map, not only LiteLLM's.

And the parts of the LiteLLM integration the services call instead of LiteLLM: the provider split,
token counts, the maximum output and the kinds of provider errors.
"""

from __future__ import annotations

from decimal import Decimal

import litellm

from llmtally.domain.cost import PRICED, RECOMPUTED, UNPRICED, event_cost, resolve_cost
from llmtally.domain.events import UsageEvent
from llmtally.integrations.litellm.calls import provider_error_kind, rate_limit_error
from llmtally.integrations.litellm.models import count_tokens, max_output_tokens, split_provider


class TablePrices:
    """A price map of this test: a fixed table, and a flat cost for usage with other token types."""

    def __init__(self) -> None:
        self.table = {("house-model", "house"): (Decimal("0.000001"), Decimal("0.000002"))}
        self.usage_questions: list[tuple[str, int]] = []

    def price(self, model: str, provider: str | None) -> tuple[Decimal, Decimal] | None:
        return self.table.get((model, provider or ""))

    def usage_cost(
        self,
        model: str,
        provider: str | None,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int,
        cache_creation_tokens: int,
        reasoning_tokens: int,
        audio_tokens: int,
    ) -> Decimal | None:
        self.usage_questions.append((model, cached_tokens))
        return Decimal("0.5")


def test_the_rules_price_with_the_map_they_are_given() -> None:
    prices = TablePrices()
    assert resolve_cost("house-model", "house", 1000, 500, None, prices=prices) == (Decimal("0.002000"), RECOMPUTED)
    assert resolve_cost("house-model", "house", 1000, 500, 0.25, prices=prices) == (Decimal("0.25"), PRICED)
    assert resolve_cost("gpt-4o-mini", "openai", 1000, 500, None, prices=prices) == (None, UNPRICED)  # not in it
    assert prices.usage_questions == []
    cached = resolve_cost("house-model", "house", 1000, 500, None, prices=prices, cached_tokens=200)
    assert cached == (Decimal("0.5"), RECOMPUTED) and prices.usage_questions == [("house-model", 200)]


def test_an_event_is_priced_by_the_map_it_is_given() -> None:
    event = UsageEvent("e1", "house-model", "success", provider="house", prompt_tokens=10, completion_tokens=-3)
    assert event_cost(event, TablePrices()) == (Decimal("0.000010"), RECOMPUTED)  # negative tokens count 0


def test_the_provider_split_and_token_counts_are_litellms() -> None:
    assert split_provider("anthropic/claude-3-5-haiku-20241022") == ("claude-3-5-haiku-20241022", "anthropic")
    assert split_provider("gpt-4o-mini") == ("gpt-4o-mini", "openai")
    assert split_provider("no-such-provider-here") == ("no-such-provider-here", "unknown")
    messages = [{"role": "user", "content": "How much did I spend this month?"}]
    assert count_tokens("gpt-4o-mini", messages=messages) == litellm.token_counter(
        model="gpt-4o-mini", messages=messages
    )
    assert count_tokens("gpt-4o-mini", text="hello world") == litellm.token_counter(
        model="gpt-4o-mini", text="hello world"
    )
    assert max_output_tokens("no-such-model", "gpt-4o-mini") == litellm.model_cost["gpt-4o-mini"]["max_output_tokens"]
    assert max_output_tokens("no-such-model") is None


def test_provider_errors_are_told_apart_without_naming_litellm() -> None:
    assert provider_error_kind(rate_limit_error("slow down", provider="openai", model="gpt-4o")) == "rate_limit"
    auth = litellm.AuthenticationError("bad key", llm_provider="openai", model="gpt-4o")
    assert provider_error_kind(auth) == "authentication"
    assert provider_error_kind(ValueError("not a provider error")) is None
