"""Three users, their calls and tokens: the data the JSON API and page tests read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally import Ledger, Settings, UsageEvent
from llmtally.db import Database

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
ADA, BOB, ROOT = "password_ada", "password_bob", "password_root"


def event(call: str, user: str | None, **fields: object) -> UsageEvent:
    base: dict[str, object] = {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": "success",
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "reported_cost": 0.001,
        "latency_ms": 120,
        "created_at": NOW,
        "messages": [{"role": "user", "content": f"question {call}"}],
        "response": {"choices": [{"message": {"role": "assistant", "content": f"answer {call}"}}]},
    }
    base.update(fields)
    return UsageEvent(litellm_call_id=call, user_profile_id=user, **base)  # type: ignore[arg-type]


def seed(db_url: str) -> None:
    """Ada: 3 calls (one failed, one unpriced model). Bob: 2 calls. Root (admin): none. One anonymous call."""
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.upsert_user_sync(ADA, email="ada@example.com", full_name="Ada", provider="password")
        ledger.upsert_user_sync(BOB, email="bob@example.com", full_name="Bob", provider="password")
        ledger.upsert_user_sync(ROOT, email="Root@Example.com", full_name="Root", provider="password")
        for e in [
            event("ada-1", ADA, created_at=NOW - dt.timedelta(seconds=30)),
            event(
                "ada-2",
                ADA,
                status="failure",
                prompt_tokens=0,
                completion_tokens=0,
                reported_cost=0.0,
                error="RateLimitError: slow down",
                error_type="RateLimitError",
                response=None,
                latency_ms=3000,
                created_at=NOW - dt.timedelta(seconds=20),
            ),
            event(
                "ada-3",
                ADA,
                model="acme-internal",
                provider="acme",
                reported_cost=None,
                latency_ms=700,
                created_at=NOW - dt.timedelta(seconds=10),
            ),
            event(
                "bob-1",
                BOB,
                reported_cost=0.5,
                messages=[{"role": "user", "content": "bob secret"}],
                stream=True,
                first_token_ms=85,
            ),
            event("bob-2", BOB, model="claude-haiku-4-5", provider="anthropic", created_at=NOW - dt.timedelta(days=40)),
            event("anon-1", None),
        ]:
            ledger.record(e)
        assert ledger.flush_sync()


@dataclass
class Api:
    db: Database
    client: TestClient
    app: FastAPI
    tokens: dict[str, str]

    def get(self, path: str, who: str | None = None, **params: object) -> object:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.get(path, params=params, headers=headers)  # type: ignore[arg-type]
