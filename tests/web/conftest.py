"""Fixtures for the JSON API and pages, in process over a real database: three users and their tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally import Ledger, Settings, UsageEvent
from llmtally.app.web import WebState, install_web
from llmtally.app.web.api import build_api
from llmtally.db import Database
from llmtally.tokens import create_token

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
            event("bob-1", BOB, reported_cost=0.5, messages=[{"role": "user", "content": "bob secret"}]),
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


@pytest.fixture
def seeded_db(db_url: str) -> Iterator[Database]:
    seed(db_url)
    with Database(db_url) as db:
        yield db


@pytest.fixture
def state(seeded_db: Database) -> WebState:
    return WebState(db=seeded_db, admins=frozenset({ROOT}), show_content=True)


@pytest.fixture
def api(seeded_db: Database, state: WebState) -> Iterator[Api]:
    app = build_api(state)
    tokens = {user: create_token(seeded_db, user, name="test")[0] for user in (ADA, BOB, ROOT)}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(seeded_db, client, app, tokens)


@pytest.fixture
def site(seeded_db: Database, state: WebState) -> Iterator[TestClient]:
    """The pages, the API under /api/v1 and /metrics on one app, as the server mounts them."""
    app = FastAPI()
    install_web(app, state)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client
