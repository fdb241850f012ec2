"""The cost of an event: what to store and its status, from what was reported and a price map.

Cost status of a row:
  priced      the provider's library reported a cost above 0, or the call used no tokens (0, whatever
              the model), or a cache hit (the cost reported, 0)
  recomputed  0 (or nothing) was reported for a priced model; recomputed from tokens x price, by the
              price map's cost of the whole usage when it has cached, cache-write, reasoning or audio tokens
  unpriced    no price is known: cost is NULL, never a silent 0
  custom      a row of model_prices set the cost (applied in the database at insert)

The rules are pure: the prices come from a ``PriceMap`` (LiteLLM's, ``llmtally.integrations.litellm.prices``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from llmtally.domain.events import UsageEvent

PRICED = "priced"
RECOMPUTED = "recomputed"
UNPRICED = "unpriced"
CUSTOM = "custom"


# LiteLLM computes costs in binary floats (0.00034500000000000004): keep 12 decimal places of a
# dollar, far below any price, and drop the noise.
COST_QUANTUM = Decimal("1e-12")


class PriceMap(Protocol):
    """Prices per token of models, by name and provider."""

    def price(self, model: str, provider: str | None) -> tuple[Decimal, Decimal] | None:
        """(input, output) USD per token, or None when the model is not priced."""
        ...

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
        """The price of the whole usage (cache reads and writes, reasoning, audio), or None."""
        ...


def as_decimal(value: Any, *, quantize: bool = False) -> Decimal | None:
    """A finite, non-negative amount as a Decimal (a float cut to COST_QUANTUM with ``quantize``), else None."""
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    if not number.is_finite() or number < 0:
        return None
    return number.quantize(COST_QUANTUM).normalize() if quantize and isinstance(value, float) else number


def resolve_cost(
    model: str,
    provider: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    reported: Any,
    *,
    prices: PriceMap,
    cache_hit: bool = False,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    reasoning_tokens: int = 0,
    audio_tokens: int = 0,
) -> tuple[Decimal | None, str]:
    """The cost to store and its status, from what was reported and the price map.

    A cache hit costs what was reported (0): the provider was not called. A cost reported above 0
    is kept. Otherwise the cost is recomputed: tokens x price when the usage has only prompt and
    completion tokens, the price map's cost of the whole usage when it has other types.
    """
    reported_cost = as_decimal(reported, quantize=True)
    if cache_hit:
        return (reported_cost if reported_cost is not None else Decimal(0)), PRICED
    if reported_cost is not None and reported_cost > 0:
        return reported_cost, PRICED
    if not (prompt_tokens or completion_tokens or cached_tokens or cache_creation_tokens or audio_tokens):
        return Decimal(0), PRICED  # no tokens (a call refused before any was used): it cost nothing, priced or not
    price = prices.price(model, provider)
    if price is None:
        return None, UNPRICED
    recomputed: Decimal | None = None
    if cached_tokens or cache_creation_tokens or reasoning_tokens or audio_tokens:
        recomputed = prices.usage_cost(
            model,
            provider,
            prompt_tokens,
            completion_tokens,
            cached_tokens=cached_tokens,
            cache_creation_tokens=cache_creation_tokens,
            reasoning_tokens=reasoning_tokens,
            audio_tokens=audio_tokens,
        )
    if recomputed is None:
        recomputed = prompt_tokens * price[0] + completion_tokens * price[1]
    if reported_cost is not None and recomputed == 0:
        return reported_cost, PRICED
    return recomputed, RECOMPUTED


def event_cost(event: UsageEvent, prices: PriceMap) -> tuple[Decimal | None, str]:
    """``resolve_cost`` for one event (negative token counts priced as 0, as they are stored)."""
    return resolve_cost(
        event.model,
        event.provider,
        max(0, event.prompt_tokens),
        max(0, event.completion_tokens),
        event.reported_cost,
        prices=prices,
        cache_hit=event.cache_hit,
        cached_tokens=max(0, event.cached_tokens),
        cache_creation_tokens=max(0, event.cache_creation_tokens),
        reasoning_tokens=max(0, event.reasoning_tokens),
        audio_tokens=max(0, event.audio_tokens),
    )
