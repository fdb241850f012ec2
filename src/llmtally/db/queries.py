"""Named SQL queries from the files in ``sql/queries/`` (a ``-- name --`` line starts each one).

Each file holds one area's queries (``ledger.sql``, ``analytics.sql``, ...); a name is unique across
all of them, and the loader refuses a name written twice.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^-- ([a-z_]+) --$", re.MULTILINE)


def parse(text: str, source: str) -> dict[str, str]:
    """The named queries of one file's text."""
    parts = _HEADER.split(text)
    named: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"query {name!r} is written twice in {source}")
        named[name] = body.strip()
    return named


@cache
def queries() -> dict[str, str]:
    """Every named query, from every file of ``sql/queries/``."""
    named: dict[str, str] = {}
    folder = resources.files("llmtally") / "sql" / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".sql"):
            continue
        for name, body in parse(entry.read_text(encoding="utf-8"), entry.name).items():
            if name in named:
                raise ValueError(f"query {name!r} is written in two files (one is {entry.name})")
            named[name] = body
    return named


def query(name: str) -> str:
    return queries()[name]
