"""The optional parts of llmtally and the packages each needs (the extras of pyproject.toml).

``pip install llmtally`` is the core: ledger, migrations, analytics, budgets and the CLI. The chat app,
dashboard and JSON API need ``llmtally[app]``; writing through Supabase's API needs ``llmtally[supabase]``.
Nothing reachable from ``import llmtally`` or a core CLI command imports those packages; the code that
does checks here first, so a missing extra is one line with the install command, not a traceback.
"""

from __future__ import annotations

import importlib.util

from llmtally.errors import MissingExtra

# The modules each extra brings that llmtally imports (keep in step with pyproject.toml).
MODULES: dict[str, tuple[str, ...]] = {
    "app": ("chainlit", "fastapi", "starlette", "uvicorn", "jinja2"),
    "supabase": ("supabase", "postgrest"),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (found without importing them)."""
    return [name for name in MODULES[extra] if importlib.util.find_spec(name) is None]


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` naming ``pip install 'llmtally[extra]'`` if the extra is not installed."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(feature, extra, absent)
