"""Custom model prices (``model_prices``) and repricing of stored rows.

Prices are stored per token; the CLI takes them per million tokens, the way providers quote them.
A custom price wins over LiteLLM's map for new rows at once (applied by the insert) and for stored
rows after :func:`reprice`; the update trigger keeps counters and the rollup exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.domain.cost import resolve_cost
from llmtally.errors import UserInputError
from llmtally.integrations.litellm.prices import LITELLM_PRICES, litellm_price

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input_cost_per_token: Decimal
    output_cost_per_token: Decimal
    updated_at: dt.datetime
    cache_read_cost_per_token: Decimal | None = None  # None: the input price
    cache_creation_cost_per_token: Decimal | None = None  # None: the input price

    @property
    def input_per_million(self) -> Decimal:
        return per_million(self.input_cost_per_token)

    @property
    def output_per_million(self) -> Decimal:
        return per_million(self.output_cost_per_token)

    def _or_input(self, price: Decimal | None) -> Decimal:
        return self.input_cost_per_token if price is None else price  # a price of 0 is a price

    @property
    def cache_read_per_million(self) -> Decimal:
        return per_million(self._or_input(self.cache_read_cost_per_token))

    @property
    def cache_creation_per_million(self) -> Decimal:
        return per_million(self._or_input(self.cache_creation_cost_per_token))


def per_million(per_token: Decimal) -> Decimal:
    return (per_token * MILLION).normalize()


def parse_price(value: str | float | Decimal, name: str) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise UserInputError(f"{name} must be a number of USD (got {value!r})") from None
    if not price.is_finite() or price < 0:
        raise UserInputError(f"{name} must be zero or more (got {value!r})")
    return price


def list_prices(db: Database) -> list[ModelPrice]:
    return [ModelPrice(**row) for row in db.fetch_all(query("list_prices"))]


def set_price(
    db: Database,
    model: str,
    *,
    input_per_million: Decimal,
    output_per_million: Decimal,
    cache_read_per_million: Decimal | None = None,
    cache_creation_per_million: Decimal | None = None,
) -> None:
    """Set a custom price; a cache price left None is the input price."""
    if not model.strip():
        raise UserInputError("model must not be empty")
    db.execute(
        query("set_price"),
        {
            "model": model.strip(),
            "input": input_per_million / MILLION,
            "output": output_per_million / MILLION,
            "cache_read": None if cache_read_per_million is None else cache_read_per_million / MILLION,
            "cache_creation": None if cache_creation_per_million is None else cache_creation_per_million / MILLION,
        },
    )


def delete_price(db: Database, model: str) -> bool:
    return db.execute(query("delete_price"), {"model": model}) > 0


def reprice(db: Database, model: str | None = None) -> int:
    """Recompute the cost of stored rows from current prices; return how many rows changed.

    A custom price applies in SQL (``llmtally_custom_cost``). Without one, rows whose cost llmtally
    set (custom before, unpriced, recomputed) are priced again the way an insert prices them: LiteLLM's
    cost of the whole usage (cache reads and writes, reasoning, audio), once per distinct usage.
    A cache hit keeps its cost (0); a cost the provider reported is never touched.
    """
    custom = {p.model for p in list_prices(db)}
    changed = 0
    targets = [
        r
        for r in db.fetch_all(query("recorded_models"))
        if model in (None, r["model"], f"{r['provider']}/{r['model']}")
    ]
    for row in targets:
        name, provider = row["model"], row["provider"]
        key = name if name in custom else f"{provider}/{name}" if f"{provider}/{name}" in custom else None
        params = {"model": name, "provider": provider, "price_key": key}
        if key is not None:
            changed += db.execute(query("reprice_custom"), params)
            continue
        if litellm_price(name, provider) is None:
            changed += db.execute(query("reprice_unpriced"), params)
            continue
        for usages in _batches(db.fetch_all(query("repriceable_usages"), params), REPRICE_BATCH):
            costs = [_map_cost(name, provider, u) for u in usages]
            changed += db.execute(
                query("reprice_map"),
                {**params, **{col: [u[col] for u in usages] for col in USAGE_COLUMNS}, "cost": costs},
            )
    db.execute(query("audit_reprice"), {"model": model or "every model", "changed": changed})
    return changed


USAGE_COLUMNS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "audio_tokens",
)
REPRICE_BATCH = 5_000


def _map_cost(model: str, provider: str, usage: dict[str, int]) -> Decimal | None:
    cost, _status = resolve_cost(
        model,
        provider,
        usage["prompt_tokens"],
        usage["completion_tokens"],
        None,
        prices=LITELLM_PRICES,
        cached_tokens=usage["cached_tokens"],
        cache_creation_tokens=usage["cache_creation_tokens"],
        reasoning_tokens=usage["reasoning_tokens"],
        audio_tokens=usage["audio_tokens"],
    )
    return cost


def _batches(rows: list[dict[str, int]], size: int) -> list[list[dict[str, int]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]
