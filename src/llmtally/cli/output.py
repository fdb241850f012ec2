"""How the CLI words and lays out what it prints: money, counts with their noun, tables."""

from __future__ import annotations

from decimal import Decimal


def money(value: Decimal | None) -> str:
    return "unpriced" if value is None else f"${value:,.6f}"


def amount(value: object, unit: str = "") -> str:
    """A limit or a spent amount: ``-`` for none, dollars as given, counts with thousands separators."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return f"${value.normalize():f}"
    return f"{value:,}{unit}" if isinstance(value, int) else str(value)
