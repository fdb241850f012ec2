"""What the tour's pictures show: a few days of calls by three users, one retried on a second
deployment, one cache hit, one estimated stream, one failure and one unpriced model; a default monthly
budget, Bob's own daily one and a rate limit, set from the command line (the audit log names it)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from llmtally import Ledger, Settings, UsageEvent, budgets
from llmtally.db import Database, acting_as

ALICE = "password_alice"
USERS = {ALICE: ("alice@example.com", "Alice"), "password_bob": ("bob@example.com", "Bob")}


def _call(call_id: str, user: str, model: str, when: dt.datetime, **fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "provider": "anthropic" if model.startswith("claude") else "openai",
        "user_profile_id": user,
        "prompt_tokens": 400,
        "completion_tokens": 120,
        "reported_cost": 0.00018 if model == "gpt-4o-mini" else 0.0022,
        "latency_ms": 900,
        "created_at": when,
        "messages": [{"role": "user", "content": f"Question {call_id}: how much did this cost?"}],
        "response": {"choices": [{"message": {"role": "assistant", "content": f"Answer to {call_id}."}}]},
    }
    return UsageEvent(call_id, model, fields.pop("status", "success"), **(base | fields))  # type: ignore[arg-type]


def seed_tour(db_url: str) -> None:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    events = []
    for day in range(6):
        # an hour ago, but today's calls stay in today (UTC): Bob's daily budget counts them from midnight
        when = now - dt.timedelta(days=day, hours=1) if day else max(now - dt.timedelta(hours=1), midnight)
        events.append(_call(f"a{day}", ALICE, "gpt-4o-mini", when, latency_ms=600 + 90 * day))
        events.append(_call(f"b{day}", "password_bob", "claude-haiku-4-5", when, latency_ms=1200 + 40 * day))
    retried_at = now - dt.timedelta(minutes=5)
    events += [
        _call(
            "retried",
            ALICE,
            "gpt-4o-mini",
            retried_at - dt.timedelta(seconds=2),
            status="failure",
            prompt_tokens=0,
            completion_tokens=0,
            reported_cost=0.0,
            error="slow down",
            error_type="RateLimitError",
            attempt_key="retried-1",
            model_group="mini",
            api_base="https://east.example.com",
        ),
        _call(
            "retried",
            ALICE,
            "gpt-4o-mini",
            retried_at,
            attempt_key="retried-2",
            model_group="mini",
            api_base="https://west.example.com",
        ),
        _call(
            "hit",
            "password_bob",
            "gpt-4o-mini",
            now - dt.timedelta(minutes=3),
            cache_hit=True,
            reported_cost=0.0,
            saved_cost=0.00018,
        ),
        _call(
            "streamed", ALICE, "claude-haiku-4-5", now - dt.timedelta(minutes=2), usage_source="estimated", stream=True
        ),
        _call("internal", "password_bob", "acme-internal", now - dt.timedelta(minutes=1), reported_cost=None),
    ]
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for user, (email, name) in USERS.items():
            ledger.upsert_user_sync(user, email=email, full_name=name, provider="password")
        for event in events:
            ledger.record(event)
        assert ledger.flush_sync()
    with Database(db_url) as db, acting_as("cli:ops"):
        budgets.set_budget(db, None, "monthly", limit_usd=Decimal("5"))
        budgets.set_budget(db, "password_bob", "daily", limit_usd=Decimal("0.002"), hard=False)
        budgets.set_rate_limit(db, None, rpm=60, tpm=None)
