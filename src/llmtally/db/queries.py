"""Named SQL queries from ``sql/queries.sql`` (a ``-- name --`` line starts each one)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


@cache
def queries() -> dict[str, str]:
    text = (resources.files("llmtally") / "sql" / "queries.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    named = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        named[name] = body.strip()
    return named


def query(name: str) -> str:
    return queries()[name]
