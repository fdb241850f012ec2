"""What journaling costs the caller: ``LedgerWriter.submit`` = serialise the event + one OS write.

Runs standalone (``python -m bench.spool``): appends a typical chat event (system prompt, user
message, a 600-character answer, LiteLLM's response object shape) to a spool segment in a temporary
directory, in each content mode, with and without fsync, and reports microseconds per event (median
of 5 rounds). Also times one call carrying a 20 MB message (cut to LLMTALLY_MAX_CONTENT_BYTES).
No database: the writer thread's side is measured by bench.ingest.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from llmtally.domain.events import UsageEvent
from llmtally.ledger.spool import Spool, encode

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant for the finance team. " * 8},
    {"role": "user", "content": "What did we spend on GPT-4o last month, and who spent most? Call me on 415 555 0132."},
]
RESPONSE = {
    "id": "chatcmpl-123",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "About three dollars. " * 30}}],
    "usage": {"prompt_tokens": 120, "completion_tokens": 150, "total_tokens": 270},
}


def event(i: int, messages: object = MESSAGES) -> UsageEvent:
    return UsageEvent(
        f"bench-{i}",
        "gpt-4o-mini",
        "success",
        provider="openai",
        user_profile_id="google_1",
        prompt_tokens=120,
        completion_tokens=150,
        messages=messages,
        response=RESPONSE,
        metadata={"user_profile_id": "google_1", "session_id": "s-1"},
    )


def per_event_us(content: str, fsync: bool, n: int) -> float:
    rounds = []
    for _ in range(5):
        with tempfile.TemporaryDirectory() as home:
            spool = Spool(Path(home), fsync=fsync).open()
            events = [event(i) for i in range(n)]
            started = time.perf_counter()
            for e in events:
                spool.append(encode(e, content=content))
            rounds.append((time.perf_counter() - started) / n * 1e6)
            spool.close()
    return statistics.median(rounds)


def main(n: int = 20_000) -> None:
    print(f"submit() cost per event, median of 5 rounds of {n} events (line of {len(encode(event(0)))} bytes)")
    print("| content | fsync | µs per event |")
    print("|---|---|---|")
    for content in ("full", "redacted", "none"):
        print(f"| {content} | no | {per_event_us(content, False, n):.1f} |")
    print(f"| full | yes | {per_event_us('full', True, max(200, n // 50)):.1f} |")
    huge = event(0, [{"role": "user", "content": "lorem ipsum " * (20_000_000 // 12)}])
    started = time.perf_counter()
    line = encode(huge)
    print(f"20 MB message: {(time.perf_counter() - started) * 1000:.0f} ms to serialise, stored line {len(line)} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
