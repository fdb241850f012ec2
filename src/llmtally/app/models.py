"""The models offered in the chat's model picker: the demo model, plus those whose API key is set."""

from __future__ import annotations

import os
from dataclasses import dataclass

from llmtally.integrations.litellm.demo_provider import DEMO_MODEL


@dataclass(frozen=True)
class ModelChoice:
    model: str  # as passed to litellm.acompletion
    label: str


# Provider key (any one of the variables) -> models to offer. LITELLM reads the same variables.
_BY_KEY: tuple[tuple[tuple[str, ...], tuple[ModelChoice, ...]], ...] = (
    (("OPENAI_API_KEY",), (ModelChoice("gpt-4o-mini", "OpenAI GPT-4o mini"), ModelChoice("gpt-4o", "OpenAI GPT-4o"))),
    (
        ("ANTHROPIC_API_KEY",),
        (
            ModelChoice("anthropic/claude-haiku-4-5", "Anthropic Claude Haiku 4.5"),
            ModelChoice("anthropic/claude-sonnet-4-5", "Anthropic Claude Sonnet 4.5"),
        ),
    ),
    (
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        (ModelChoice("gemini/gemini-2.5-flash", "Google Gemini 2.5 Flash"),),
    ),
)


def available_models(extra: str | None = None) -> list[ModelChoice]:
    """Demo first, then providers with a key in the environment, then ``extra`` (comma-separated)."""
    choices = [ModelChoice(DEMO_MODEL, "llmtally demo (offline)")]
    for keys, models in _BY_KEY:
        if any(os.environ.get(k) for k in keys):
            choices.extend(models)
    for name in (extra or "").split(","):
        if name.strip() and name.strip() not in {c.model for c in choices}:
            choices.append(ModelChoice(name.strip(), name.strip()))
    return choices
