"""One app process for the concurrency test: real LiteLLM calls through its own ledger.

``run([DB_URL, WORKER, CALLS])``; the tests start several through tests/support/forked.py.
"""

from __future__ import annotations

import asyncio
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import contextlib

import litellm

from llmtally import Ledger, Settings

USERS = [f"google_{n}" for n in range(5)]


async def main(db_url: str, worker: int, calls: int) -> None:
    litellm.suppress_debug_info = True
    async with Ledger(db_url, settings=Settings(flush_interval_ms=50, batch_size=100)) as ledger:

        async def one(i: int) -> None:
            user = USERS[(worker + i) % len(USERS)]
            kwargs = {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"w{worker} call {i}"}],
                "metadata": {"user_profile_id": user},
                "litellm_call_id": f"w{worker}-{i}",
            }
            if i % 10 == 0:
                with contextlib.suppress(Exception):
                    await litellm.acompletion(**kwargs, mock_response=Exception("provider down"))
            elif i % 3 == 0:
                stream = await litellm.acompletion(**kwargs, stream=True, mock_response="streamed " * (i % 7 + 1))
                async for _ in stream:
                    pass
            else:
                await litellm.acompletion(**kwargs, mock_response="ok")

        for start in range(0, calls, 50):
            await asyncio.gather(*(one(i) for i in range(start, min(calls, start + 50))))
        assert await ledger.flush(timeout=60), "flush timed out"


def run(argv: list[str]) -> None:
    asyncio.run(main(argv[0], int(argv[1]), int(argv[2])))


if __name__ == "__main__":
    run(sys.argv[1:])
