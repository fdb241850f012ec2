"""LiteLLM's price map: prices per token by model, and LiteLLM's cost of a whole usage.

``LITELLM_PRICES`` is the ``PriceMap`` (llmtally.domain.cost) the ledger prices events with. LiteLLM
is imported when a price is first asked for, not when this module is.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from llmtally.domain.cost import as_decimal

log = logging.getLogger("llmtally.pricing")


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
        prompt = as_decimal(entry.get("input_cost_per_token"))
        completion = as_decimal(entry.get("output_cost_per_token"))
        if prompt is not None and completion is not None and (prompt > 0 or completion > 0):
            return prompt, completion
    return None


def litellm_usage_cost(
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
    return as_decimal(float(prompt_cost) + float(completion_cost), quantize=True)


class LiteLLMPrices:
    """LiteLLM's price map as a ``PriceMap``."""

    def price(self, model: str, provider: str | None) -> tuple[Decimal, Decimal] | None:
        return litellm_price(model, provider)

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
        return litellm_usage_cost(
            model,
            provider,
            prompt_tokens,
            completion_tokens,
            cached_tokens=cached_tokens,
            cache_creation_tokens=cache_creation_tokens,
            reasoning_tokens=reasoning_tokens,
            audio_tokens=audio_tokens,
        )


LITELLM_PRICES = LiteLLMPrices()
