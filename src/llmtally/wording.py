"""How amounts and counts are written for people: the CLI, the pages and the chat's panel share it."""

from __future__ import annotations

from typing import Any


def money(value: Any) -> str:
    """Dollars to six decimals; a missing cost is "unpriced", never $0."""
    return "unpriced" if value is None else f"${value:,.6f}"


def priced_cost(cost: Any, requests: int, unpriced: int) -> str:
    """A total over requests some of which have no price: "unpriced" when none has one, else the
    priced sum with the unpriced count beside it (an unpriced request is never shown as $0)."""
    if unpriced and unpriced >= requests:
        return "unpriced"
    if unpriced:
        return f"{money(cost)} + {unpriced} unpriced"
    return money(cost)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 request``, ``5 requests``, ``1,200 users``: the count and its noun in the right number."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"
