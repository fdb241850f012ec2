"""How the app's pages and the chat's panel write amounts: one place, so they agree."""

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


def count(n: int, word: str) -> str:
    """``1 request``, ``2 requests``: a count with its noun in the right number."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"
