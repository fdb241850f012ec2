"""The offline demo model: a real LiteLLM provider registered in-process.

``llmtally/demo`` streams a deterministic reply that explains what llmtally records for the message,
with honest token counts (LiteLLM's tokenizer) and a documented price, so costs, budgets and
analytics work with no API key. Price: $0.50 per million prompt tokens, $1.50 per million completion
tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

from llmtally.wording import plural

DEMO_MODEL = "llmtally/demo"
DEMO_INPUT_PER_TOKEN = 0.5e-6
DEMO_OUTPUT_PER_TOKEN = 1.5e-6
CHUNK_DELAY_S = 0.02  # a visible stream, and time to press Stop


def _text_of(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def reply_for(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The demo's reply to a conversation and the prompt's token count."""
    prompt_tokens = litellm.token_counter(model="gpt-4o-mini", messages=messages)
    said = _text_of(messages)
    words = len(said.split())
    turns = sum(1 for m in messages if m.get("role") == "user")
    cost = prompt_tokens * DEMO_INPUT_PER_TOKEN
    reply = (
        f"This is the offline demo model. Your message has {plural(words, 'word')}; with the "
        f"{plural(turns - 1, 'earlier turn')} of this conversation the prompt is {prompt_tokens} tokens. "
        f"llmtally records this call against your user id in request_logs: model {DEMO_MODEL}, "
        f"{prompt_tokens} prompt tokens, the completion tokens of this reply, and the cost at the demo price "
        f"($0.50 per million prompt tokens, $1.50 per million completion tokens; the prompt alone is "
        f"${cost:.6f}). A trigger adds it to your counters and the daily rollup in the same transaction, "
        f"so your usage panel updates as soon as this reply ends. Type /usage to see this month's totals."
    )
    return reply, prompt_tokens


def _words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


class DemoLLM(CustomLLM):  # type: ignore[misc]
    """LiteLLM provider ``llmtally``: model ``demo``."""

    def _response(self, model: str, messages: list[dict[str, Any]]) -> Any:
        reply, prompt_tokens = reply_for(messages)
        completion_tokens = litellm.token_counter(model="gpt-4o-mini", text=reply)
        return litellm.ModelResponse(
            model=model,
            choices=[{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            usage=litellm.Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def completion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        return self._response(model, messages)

    async def acompletion(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Any:
        return self._response(model, messages)

    def _chunks(self, messages: list[dict[str, Any]]) -> Iterator[GenericStreamingChunk]:
        reply, prompt_tokens = reply_for(messages)
        completion_tokens = litellm.token_counter(model="gpt-4o-mini", text=reply)
        for word in _words(reply):
            yield GenericStreamingChunk(
                text=word, is_finished=False, finish_reason="", usage=None, index=0, tool_use=None
            )
        yield GenericStreamingChunk(
            text="",
            is_finished=True,
            finish_reason="stop",
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            index=0,
            tool_use=None,
        )

    def streaming(self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any) -> Iterator[Any]:
        for chunk in self._chunks(messages):
            time.sleep(CHUNK_DELAY_S)
            yield chunk

    async def astreaming(
        self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        for chunk in self._chunks(messages):
            await asyncio.sleep(CHUNK_DELAY_S)
            yield chunk


def register_demo_model() -> None:
    """Make ``llmtally/demo`` callable through LiteLLM, with its price in LiteLLM's map. Idempotent."""
    handler = {"provider": "llmtally", "custom_handler": DemoLLM()}
    litellm.custom_provider_map = [p for p in litellm.custom_provider_map if p.get("provider") != "llmtally"]
    litellm.custom_provider_map.append(handler)
    litellm.register_model(
        {
            DEMO_MODEL: {
                "input_cost_per_token": DEMO_INPUT_PER_TOKEN,
                "output_cost_per_token": DEMO_OUTPUT_PER_TOKEN,
                "litellm_provider": "llmtally",
                "mode": "chat",
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "max_tokens": 4096,
                "max_output_tokens": 4096,
            }
        }
    )
