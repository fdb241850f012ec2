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
from llmtally.errors import UserInputError
from llmtally.ledger.pricing import litellm_price

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ModelPrice:
    model: str
    input_cost_per_token: Decimal
    output_cost_per_token: Decimal
    updated_at: dt.datetime

    @property
    def input_per_million(self) -> Decimal:
        return (self.input_cost_per_token * MILLION).normalize()

    @property
    def output_per_million(self) -> Decimal:
        return (self.output_cost_per_token * MILLION).normalize()


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


def set_price(db: Database, model: str, *, input_per_million: Decimal, output_per_million: Decimal) -> None:
    if not model.strip():
        raise UserInputError("model must not be empty")
    db.execute(
        query("set_price"),
        {"model": model.strip(), "input": input_per_million / MILLION, "output": output_per_million / MILLION},
    )


def delete_price(db: Database, model: str) -> bool:
    return db.execute(query("delete_price"), {"model": model}) > 0


def reprice(db: Database, model: str | None = None) -> int:
    """Recompute the cost of stored rows from current prices; return how many rows changed."""
    custom = {p.model: p for p in list_prices(db)}
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
        price = litellm_price(name, provider)
        if price is not None:
            changed += db.execute(query("reprice_map"), {**params, "input": price[0], "output": price[1]})
        else:
            changed += db.execute(query("reprice_unpriced"), params)
    return changed
