"""One app process for the budget concurrency tests: budgeted LiteLLM calls through its own ledger.

``run([DB_URL, USER, WORKER, CALLS])`` prints one JSON line: how many calls succeeded and how many were
refused, by error. One ledger per process (each installs its LiteLLM callback, which sees every call of the
process): the tests start several processes through tests/support/forked.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from llmtally import BudgetExceeded, Budgets, Ledger, RateLimited, Settings

# 10 prompt tokens by LiteLLM's tokenizer, and LiteLLM's mock answers 10 prompt + 20 completion
# tokens: with max_tokens=20 the reserved worst case equals the recorded usage exactly.
MESSAGES = [{"role": "user", "content": "hello hello hello"}]


async def main(db_url: str, user: str, worker: int, calls: int) -> None:
    litellm.suppress_debug_info = True
    outcome = {"ok": 0, "budget": 0, "rate": 0, "other": 0}
    async with Ledger(db_url, settings=Settings(flush_interval_ms=50, batch_size=100)) as ledger:
        budgets = Budgets(ledger)

        async def one(i: int) -> None:
            try:
                await budgets.acompletion(
                    user_id=user, model="gpt-4o-mini", messages=MESSAGES, max_tokens=20, mock_response="ok"
                )
                outcome["ok"] += 1
            except BudgetExceeded:
                outcome["budget"] += 1
            except RateLimited:
                outcome["rate"] += 1
            except Exception as exc:
                outcome["other"] += 1
                print(f"w{worker} call {i}: {type(exc).__name__}: {exc}", file=sys.stderr)

        await asyncio.gather(*(one(i) for i in range(calls)))
        assert await ledger.flush(timeout=60), "flush timed out"
    print(json.dumps(outcome))


def run(argv: list[str]) -> None:
    asyncio.run(main(argv[0], argv[1], int(argv[2]), int(argv[3])))


if __name__ == "__main__":
    run(sys.argv[1:])
