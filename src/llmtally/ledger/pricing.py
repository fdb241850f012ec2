"""Prices from LiteLLM's map, and the cost of an event.

Cost status of a row:
  priced      LiteLLM reported a cost above 0, or the call used no tokens (0, whatever the model), or a
              cache hit (the cost LiteLLM reported, 0)
  recomputed  LiteLLM reported 0 (or nothing) for a priced model; recomputed from tokens x price, by
              LiteLLM's own cost function when the usage has cached, cache-write, reasoning or audio tokens
  unpriced    no price is known: cost is NULL, never a silent 0
  custom      a row of model_prices set the cost (applied in the database at insert)
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmtally.ledger.events import UsageEvent

log = logging.getLogger("llmtally.pricing")

PRICED = "priced"
RECOMPUTED = "recomputed"
UNPRICED = "unpriced"
CUSTOM = "custom"


# LiteLLM computes costs in binary floats (0.00034500000000000004): keep 12 decimal places of a
# dollar, far below any price, and drop the noise.
COST_QUANTUM = Decimal("1e-12")


def _as_decimal(value: Any, *, quantize: bool = False) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    if not number.is_finite() or number < 0:
        return None
    return number.quantize(COST_QUANTUM).normalize() if quantize and isinstance(value, float) else number


def litellm_price(model: str, provider: str | None) -> tuple[Decimal, Decimal] | None:
    """(input, output) USD per token from LiteLLM's price map, or None when the model is not priced."""
    import litellm

    candidates = [model]
    if provider and not model.startswith(f"{provider}/"):
        candidates.append(f"{provider}/{model}")
    if "/" in model:
        candidates.append(model.split("/", 1)[1])
    for key in candidates:
        entry = litellm.model_cost.get(key)
        if not isinstance(entry, dict):
            continue
        prompt = _as_decimal(entry.get("input_cost_per_token"))
        completion = _as_decimal(entry.get("output_cost_per_token"))
        if prompt is not None and completion is not None and (prompt > 0 or completion > 0):
            return prompt, completion
    return None


def resolve_cost(
    model: str,
    provider: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    reported: Any,
    *,
    cache_hit: bool = False,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    reasoning_tokens: int = 0,
    audio_tokens: int = 0,
) -> tuple[Decimal | None, str]:
    """The cost to store and its status, from what LiteLLM reported and its price map.

    A cache hit costs what LiteLLM reported (0): the provider was not called. A cost LiteLLM reported
    above 0 is kept. Otherwise the cost is recomputed: tokens x price when the usage has only prompt
    and completion tokens, LiteLLM's cost function over the whole usage when it has other types.
    """
    reported_cost = _as_decimal(reported, quantize=True)
    if cache_hit:
        return (reported_cost if reported_cost is not None else Decimal(0)), PRICED
    if reported_cost is not None and reported_cost > 0:
        return reported_cost, PRICED
    if not (prompt_tokens or completion_tokens or cached_tokens or cache_creation_tokens or audio_tokens):
        return Decimal(0), PRICED  # no tokens (a call refused before any was used): it cost nothing, priced or not
    price = litellm_price(model, provider)
    if price is None:
        return None, UNPRICED
    recomputed: Decimal | None = None
    if cached_tokens or cache_creation_tokens or reasoning_tokens or audio_tokens:
        recomputed = _litellm_cost(
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


def event_cost(event: UsageEvent) -> tuple[Decimal | None, str]:
    """``resolve_cost`` for one event (negative token counts priced as 0, as they are stored)."""
    return resolve_cost(
        event.model,
        event.provider,
        max(0, event.prompt_tokens),
        max(0, event.completion_tokens),
        event.reported_cost,
        cache_hit=event.cache_hit,
        cached_tokens=max(0, event.cached_tokens),
        cache_creation_tokens=max(0, event.cache_creation_tokens),
        reasoning_tokens=max(0, event.reasoning_tokens),
        audio_tokens=max(0, event.audio_tokens),
    )


def _litellm_cost(
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
    """LiteLLM's price of the whole usage (cache reads and writes, reasoning, audio), or None."""
    import litellm
    from litellm.types.utils import Usage

    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        prompt_tokens_details={"cached_tokens": cached_tokens, "audio_tokens": audio_tokens},
        completion_tokens_details={"reasoning_tokens": reasoning_tokens},
        cache_creation_input_tokens=cache_creation_tokens,
        cache_read_input_tokens=cached_tokens,
    )
    name = model if not provider or model.startswith(f"{provider}/") else f"{provider}/{model}"
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=name, custom_llm_provider=provider, usage_object=usage
        )
    except Exception as exc:  # not mapped under this name, or a usage LiteLLM cannot price
        log.debug("LiteLLM could not price %s: %s", name, exc)
        return None
    return _as_decimal(float(prompt_cost) + float(completion_cost), quantize=True)
