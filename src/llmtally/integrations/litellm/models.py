"""What LiteLLM knows of a model: its provider, the tokens of a text, its maximum output.

LiteLLM is imported at the first question, not when this module is.
"""

from __future__ import annotations

from typing import Any

UNKNOWN_PROVIDER = "unknown"


def split_provider(model: str) -> tuple[str, str]:
    """(model, provider) as LiteLLM's own events name them: ``anthropic/claude-x`` is ``("claude-x",
    "anthropic")``, ``gpt-4o-mini`` is ``("gpt-4o-mini", "openai")``; a model LiteLLM does not know
    keeps its name, with provider ``unknown``."""
    import litellm

    try:
        bare, provider = litellm.get_llm_provider(model)[:2]
    except Exception:
        return model, UNKNOWN_PROVIDER
    return str(bare), str(provider)


def count_tokens(model: str, *, messages: Any = None, text: str | None = None) -> int:
    """Tokens of ``messages`` (a chat prompt) or of ``text`` by LiteLLM's tokenizer for ``model``.

    When the tokenizer fails (an unusual message shape), about four characters per token, at least 1.
    """
    import litellm

    what: dict[str, Any] = {"messages": messages} if messages is not None else {"text": text or ""}
    try:
        return int(litellm.token_counter(model=model, **what))
    except Exception:
        shown = text or str(messages or "")
        return max(1, len(shown) // 4)


def max_output_tokens(*names: str) -> int | None:
    """The first of ``names`` with a maximum output in LiteLLM's map (``max_output_tokens``, else ``max_tokens``)."""
    import litellm

    for name in names:
        entry = litellm.model_cost.get(name)
        if isinstance(entry, dict):
            value = entry.get("max_output_tokens") or entry.get("max_tokens")
            if isinstance(value, int) and value > 0:
                return value
    return None
