"""Prices from LiteLLM's map, and the cost of an event.

Cost status of a row:
  priced      LiteLLM reported a cost above 0 (or 0 for a call with no tokens)
  recomputed  LiteLLM reported 0 (or nothing) for a priced model; recomputed from tokens x price
  unpriced    no price is known: cost is NULL, never a silent 0
  custom      a row of model_prices set the cost (applied in the database at insert)
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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
    model: str, provider: str | None, prompt_tokens: int, completion_tokens: int, reported: Any
) -> tuple[Decimal | None, str]:
    """The cost to store and its status, from what LiteLLM reported and its price map."""
    reported_cost = _as_decimal(reported, quantize=True)
    if reported_cost is not None and reported_cost > 0:
        return reported_cost, PRICED
    price = litellm_price(model, provider)
    if price is None:
        return None, UNPRICED
    recomputed = prompt_tokens * price[0] + completion_tokens * price[1]
    if reported_cost is not None and recomputed == 0:
        return reported_cost, PRICED
    return recomputed, RECOMPUTED
