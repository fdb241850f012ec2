"""The input of a call as chat messages, so that every endpoint's prompt is counted the same way.

A budget reserves a call's prompt tokens before the call (LiteLLM's tokenizer over chat messages):
an embedding's inputs, a text completion's prompts and a Responses API ``input`` are turned into
messages here. Token arrays are counted as the text of their numbers (a bound on the tokens they are,
not their exact count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def input_texts(value: str | Sequence[Any]) -> list[str]:
    """The inputs of an embedding or a text completion as texts: strings as they are, token arrays as
    their numbers."""
    if isinstance(value, str):
        return [value]
    items = list(value)
    if items and all(isinstance(v, int) for v in items):
        return [" ".join(str(v) for v in items)]
    return [v if isinstance(v, str) else " ".join(str(t) for t in v) for v in items]


def prompt_messages(prompt: str | Sequence[Any]) -> list[dict[str, Any]]:
    """A text completion's prompts, one user message each."""
    return [{"role": "user", "content": text} for text in input_texts(prompt)]


def _content_text(content: Any) -> str:
    """The text of a message's content: a string, or the ``text`` of its parts (input_text, output_text...)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return " ".join(str(p.get("text") or "") for p in content if isinstance(p, Mapping))
    return ""


def response_input_messages(value: str | Sequence[Any], instructions: str | None = None) -> list[dict[str, Any]]:
    """A Responses API request's ``instructions`` and ``input`` as chat messages.

    Messages keep their role; the other items (a function call's arguments, a tool's output) are
    counted as user text.
    """
    messages: list[dict[str, Any]] = []
    if instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(value, str):
        return [*messages, {"role": "user", "content": value}]
    for item in value:
        if not isinstance(item, Mapping):
            continue
        role = item.get("role")
        if isinstance(role, str) and "content" in item:
            chat_role = role if role in ("system", "user", "assistant") else "system"  # "developer" is a system
            messages.append({"role": chat_role, "content": _content_text(item["content"])})
            continue
        text = " ".join(str(item[k]) for k in ("arguments", "output", "text") if item.get(k) is not None)
        if text:
            messages.append({"role": "user", "content": text})
    return messages
