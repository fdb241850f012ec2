"""Usage events as LiteLLM's callback hands them to the ledger: many users, realistic content sizes.

Users are drawn from a Zipf-like distribution (a few heavy users, a long tail). Each event carries a
system prompt, sometimes one earlier turn, the user's message and a response shaped like
``ModelResponse.model_dump()``. Text lengths follow a heavy-tailed distribution: user messages have a
median of about 300 characters, responses about 900, some reach several thousand. Every event gets
its own content strings (sliced from a corpus), as distinct calls would.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import time
import uuid
from typing import Any

from llmtally import UsageEvent

# (model, provider, priced in LiteLLM's map)
MODELS = (
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("claude-haiku-4-5", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),
    ("mistral-small-latest", "mistral"),
    ("deepseek-chat", "deepseek"),
    ("acme-internal-llm", "openai"),  # not in the price map: recorded as unpriced
)
MODEL_WEIGHTS = (40, 10, 12, 15, 8, 6, 6, 3)
PRICES = {"gpt-4o-mini": (0.15e-6, 0.6e-6), "gpt-4o": (2.5e-6, 10e-6), "gpt-4.1-mini": (0.4e-6, 1.6e-6)}

SYSTEM_PROMPT = (
    "You are a helpful assistant for the employees of Example Corp. Answer precisely and briefly, "
    "cite the internal wiki where you can, never reveal personal data of other employees, and say "
    "so when you do not know. Format code as fenced blocks and tables as Markdown. Today is a workday. "
)
_TEXT = (
    "the ledger records every call against the user who made it and keeps counters exact while "
    "analytics read a daily rollup so that dashboards stay fast at tens of millions of rows "
    "postgres batches writes with copy into a stage table then one insert moves them statement "
    "level triggers update each user once per batch and replay of the same call changes nothing "
)
_WORDS = _TEXT.split()


def _corpus(seed: int, length: int = 200_000) -> str:
    rnd = random.Random(seed)
    words: list[str] = []
    size = 0
    while size < length:
        word = rnd.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


class Workload:
    """Builds distinct, realistic events cheaply and deterministically (for a given seed)."""

    def __init__(self, *, users: int = 2000, seed: int = 1, failure_rate: float = 0.02, zipf_s: float = 1.0) -> None:
        self.rnd = random.Random(seed)
        self.users = [f"google_{10**20 + n * 7919}" for n in range(users)]
        weights = [1 / (rank + 1) ** zipf_s for rank in range(users)]
        self._user_cum = list(itertools.accumulate(weights))
        self._model_cum = list(itertools.accumulate(MODEL_WEIGHTS))
        self.failure_rate = failure_rate
        self.corpus = _corpus(seed)
        # Heavy-tailed lengths: median ~300 (user) and ~900 (response) characters, up to ~8,000.
        self._user_lengths = [min(8000, int(self.rnd.lognormvariate(5.7, 0.9))) + 5 for _ in range(4096)]
        self._reply_lengths = [min(8000, int(self.rnd.lognormvariate(6.8, 0.8))) + 5 for _ in range(4096)]

    def user(self) -> str:
        return self.users[bisect.bisect_left(self._user_cum, self.rnd.random() * self._user_cum[-1])]

    def _text(self, length: int) -> str:
        start = self.rnd.randrange(0, len(self.corpus) - length - 1)
        return self.corpus[start : start + length]

    def event(self, n: int, *, call_id: str | None = None, created_at: dt.datetime | None = None) -> UsageEvent:
        rnd = self.rnd
        user = self.user()
        model, provider = MODELS[bisect.bisect_left(self._model_cum, rnd.random() * self._model_cum[-1])]
        session = f"chat-{user[-6:]}-{n // 40}"
        messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
        if rnd.random() < 0.5:  # one earlier turn of the conversation
            messages.append({"role": "user", "content": self._text(rnd.choice(self._user_lengths))})
            messages.append({"role": "assistant", "content": self._text(rnd.choice(self._reply_lengths))})
        messages.append({"role": "user", "content": self._text(rnd.choice(self._user_lengths))})
        prompt_tokens = sum(len(m["content"]) for m in messages) // 4
        failed = rnd.random() < self.failure_rate
        stream = rnd.random() < 0.4
        now = created_at or dt.datetime.now(dt.UTC)
        call_id = call_id or str(uuid.uuid4())
        if failed:
            return UsageEvent(
                litellm_call_id=call_id,
                model=model,
                provider=provider,
                status="failure",
                user_profile_id=user,
                end_user=user,
                session_id=session,
                messages=messages,
                error="litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for requests",
                error_type="RateLimitError",
                latency_ms=rnd.randrange(50, 2000),
                stream=stream,
                metadata={"user_profile_id": user, "session_id": session},
                created_at=now,
            )
        reply = self._text(rnd.choice(self._reply_lengths))
        completion_tokens = len(reply) // 4 + 1
        price = PRICES.get(model)
        cost = prompt_tokens * price[0] + completion_tokens * price[1] if price else None
        response = {
            "id": f"chatcmpl-{call_id}",
            "created": int(time.time()),
            "model": model,
            "object": "chat.completion",
            "system_fingerprint": None,
            "choices": [
                {
                    "finish_reason": "stop",
                    "index": 0,
                    "message": {
                        "content": reply,
                        "role": "assistant",
                        "tool_calls": None,
                        "function_call": None,
                        "provider_specific_fields": None,
                    },
                }
            ],
            "usage": {
                "completion_tokens": completion_tokens,
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens_details": None,
                "prompt_tokens_details": None,
            },
        }
        return UsageEvent(
            litellm_call_id=call_id,
            model=model,
            provider=provider,
            status="success",
            user_profile_id=user,
            end_user=user,
            session_id=session,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            reported_cost=cost,
            messages=messages,
            response=response,
            latency_ms=rnd.randrange(200, 20_000),
            stream=stream,
            metadata={"user_profile_id": user, "session_id": session},
            created_at=now,
        )
