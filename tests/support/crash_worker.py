"""A recording process for the crash test: events submitted to a ledger writer until it is killed.

It runs the ledger's own writer and spool (what the LiteLLM callback calls) without importing
LiteLLM, whose import takes seconds: the test starts ten of these. It prints ``ready`` once
started, then the call id of every event right after ``submit`` returned (the ledger accepted it),
so the test knows what must survive a SIGKILL. Every third call is retried: its failed attempt comes
first, and ``ID+retried`` is printed once its success was accepted too.
"""

from __future__ import annotations

import sys
import time

from llmtally.db import Database
from llmtally.domain.events import UsageEvent
from llmtally.ledger.postgres_sink import PostgresSink
from llmtally.ledger.spool import Spool
from llmtally.ledger.writer import LedgerWriter
from llmtally.settings import Settings


def main(db_url: str, tag: str) -> None:
    settings = Settings()
    db = Database(db_url, max_size=2).open()
    writer = LedgerWriter(PostgresSink(db), spool=Spool(settings.home / "spool"), batch_size=50, flush_interval_ms=20)
    writer.start()
    print("ready", flush=True)
    i = 0
    while True:  # until SIGKILL
        call_id = f"{tag}-{i}"
        retried = i % 3 == 0  # a failed attempt first, then the success of the same call (a retry)
        if retried:
            writer.submit(
                UsageEvent(
                    call_id,
                    "gpt-4o-mini",
                    "failure",
                    provider="openai",
                    user_profile_id=f"google_{i % 3}",
                    reported_cost=0.0,
                    error="upstream 500",
                    attempt_key=f"{call_id}:1",
                )
            )
            sys.stdout.write(call_id + "\n")
            sys.stdout.flush()
        writer.submit(
            UsageEvent(
                call_id,
                "gpt-4o-mini",
                "success",
                attempt_key=f"{call_id}:2",
                provider="openai",
                user_profile_id=f"google_{i % 3}",
                prompt_tokens=10 + i % 5,
                completion_tokens=20,
                reported_cost=0.0001,  # as LiteLLM reports it: no price lookup (no LiteLLM import) needed
                messages=[{"role": "user", "content": f"{tag} call {i} " + "x" * (i % 7) * 100}],
                response={"choices": [{"message": {"content": f"answer {i}"}}]},
            )
        )
        sys.stdout.write(call_id + ("+retried" if retried else "") + "\n")
        sys.stdout.flush()
        i += 1
        if i % 20 == 0:
            time.sleep(0.002)  # a steady stream, not a tight loop


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
