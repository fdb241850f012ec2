"""Hypothesis strategies for hostile usage events: any code point, NaN, huge numbers, deep nesting, big images."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from hypothesis import strategies as st

from llmtally import UsageEvent

_ids = itertools.count()

# Any code point, lone surrogates and NUL included.
hostile_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


def nest(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"d": [value]}
    return value


class Opaque:
    def __repr__(self) -> str:
        return "<opaque \x00 \udcff>"


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.binary(max_size=30),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.builds(Opaque),
    st.frozensets(st.integers(0, 9), max_size=3),
    st.integers(0, 2500).map(nest),
    st.sampled_from([0, 4, 400]).map(lambda n: "data:image/png;base64," + "QUJD" * (n // 4)),
)
content = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)
tokens = st.one_of(st.integers(0, 100_000), st.integers(-10, 10))
HUGE = 3_000_000_000  # beyond PostgreSQL's integer: such an event can only be quarantined


@st.composite
def events(draw: st.DrawFn) -> UsageEvent:
    n = next(_ids)
    # 0: huge token count, 1: unknown status, 2: huge latency, 3: a 5 MB image in the messages
    poison = draw(st.integers(0, 40))
    return UsageEvent(
        litellm_call_id=f"fz{n}-" + draw(hostile_text),
        model=draw(st.sampled_from(["gpt-4o-mini", "claude-3-5-sonnet-20240620", ""]) | hostile_text),
        status="bogus" if poison == 1 else draw(st.sampled_from(["success", "failure", "cancelled"])),
        provider=draw(st.sampled_from(["openai", "anthropic"]) | hostile_text),
        user_profile_id=draw(st.none() | st.sampled_from(["google_1", "github_2"]) | hostile_text),
        end_user=draw(st.none() | hostile_text),
        session_id=draw(st.none() | hostile_text),
        prompt_tokens=HUGE if poison == 0 else draw(tokens),
        completion_tokens=draw(tokens),
        total_tokens=draw(st.none() | tokens),
        reported_cost=draw(st.none() | st.floats(min_value=-1, max_value=10) | st.just(float("nan"))),
        messages=[{"role": "user", "content": "data:image/png;base64," + "QUJD" * 1_250_000}]
        if poison == 3
        else draw(content),
        response=draw(content),
        error=draw(st.none() | hostile_text),
        error_type=draw(st.none() | hostile_text),
        latency_ms=2**31 + 5 if poison == 2 else draw(st.none() | st.integers(-5, 100_000)),
        stream=draw(st.booleans()),
        metadata=draw(st.dictionaries(hostile_text, content, max_size=3)),
        created_at=draw(st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1))).replace(
            tzinfo=dt.UTC
        ),
    )


RANK = {"success": 3, "cancelled": 2, "failure": 1}


@st.composite
def attempt_calls(draw: st.DrawFn) -> list[list[UsageEvent]]:
    """Logical calls of 1-4 attempts each (retries, fallbacks), with every token type, cache hits and
    estimated usage: what one process or several would report for them."""
    calls = []
    for _ in range(draw(st.integers(1, 6))):
        n = next(_ids)
        attempts = []
        for a in range(draw(st.integers(1, 4))):
            status = draw(st.sampled_from(["success", "failure", "cancelled"]))
            cache_hit = status == "success" and draw(st.booleans())
            attempts.append(
                UsageEvent(
                    litellm_call_id=f"call{n}",
                    model=draw(st.sampled_from(["gpt-4o-mini", "openai/gpt-4o-mini", "claude-3-5-haiku-latest"])),
                    status=status,  # type: ignore[arg-type]
                    provider=draw(st.sampled_from(["openai", "anthropic"])),
                    user_profile_id=draw(st.sampled_from([None, "google_1", "github_2"])),
                    prompt_tokens=draw(st.integers(0, 5000)),
                    completion_tokens=draw(st.integers(0, 2000)),
                    cached_tokens=draw(st.integers(0, 1000)),
                    cache_creation_tokens=draw(st.integers(0, 500)),
                    reasoning_tokens=draw(st.integers(0, 500)),
                    audio_tokens=draw(st.integers(0, 100)),
                    reported_cost=0.0 if cache_hit else draw(st.none() | st.floats(0, 0.5)),
                    cache_hit=cache_hit,
                    saved_cost=draw(st.floats(0, 0.1)) if cache_hit else None,
                    usage_source=draw(st.sampled_from(["provider", "estimated"])),
                    model_group=draw(st.sampled_from([None, "a", "b"])),
                    latency_ms=draw(st.integers(1, 5000)),
                    created_at=dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC) + dt.timedelta(seconds=a),
                    attempt_key=f"call{n}:{a}",
                )
            )
        calls.append(attempts)
    return calls
