"""Counting a call's LLM tokens with LiteLLM's tokenizer, where the provider reported none.

Used for the estimate of a cancelled or abandoned call (``Ledger.record_cancelled``) and for a
budget's worst case before a call (``llmtally.budgets.estimate``).
"""

from __future__ import annotations

from typing import Any


def count_tokens(litellm: Any, model: str, **what: Any) -> int:
    """LiteLLM's token count of ``messages=`` or ``text=`` for ``model``; when its tokenizer fails, a
    rough count (a token per four characters, at least one)."""
    try:
        return int(litellm.token_counter(model=model, **what))
    except Exception:
        text = what.get("text") or str(what.get("messages") or "")
        return max(1, len(text) // 4)
