"""A keyed call admitted in one statement (llmtally.admission): the key checked, its allow-list asked,
the call reserved, with the outcomes of checking the key and then reserving."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from llmtally import BudgetExceeded, RateLimited
from llmtally import budgets as api
from llmtally.admission import Admission, admit_keyed_call
from llmtally.api_tokens import create_token, revoke_token
from llmtally.db import Database
from llmtally.db.statements import StatementPool

pytestmark = pytest.mark.sql

USER = "google_admitted"
EST = api.Estimate("gpt-4o-mini", "openai", 10, 20, Decimal("0.25"), None)


@pytest.fixture(autouse=True)
def _user(db: Database) -> None:
    db.execute("select public.llmtally_upsert_user(%s)", (USER,))


def admit(db: Database, token: str, model_group: str, call_id: str) -> Admission:
    """One admission of ``EST``, on an event loop of its own, as the gateway makes it."""

    async def run() -> Admission:
        statements = StatementPool(db, max_size=1)
        try:
            return await admit_keyed_call(statements, token, model_group, call_id, EST, ttl_s=60)
        finally:
            await statements.aclose()

    return asyncio.run(run())


def _reservations(db: Database) -> list[str]:
    return [r["litellm_call_id"] for r in db.fetch_all("select litellm_call_id from public.budget_reservations")]


def _refusals(db: Database) -> list[tuple[str, str, int]]:
    rows = db.fetch_all("select user_id, reason, refused from public.refusals order by reason")
    return [(r["user_id"], r["reason"], r["refused"]) for r in rows]


def test_a_valid_key_reserves_for_its_owner_and_is_stamped(db: Database) -> None:
    token, record = create_token(db, USER, name="admitted", models=["gpt-4o-mini"], end_users=True)
    admission = admit(db, token, "gpt-4o-mini", "call-1")
    assert admission.reserved
    assert admission.access is not None and admission.access.user_id == USER and admission.access.end_users
    assert admission.access.models == frozenset({"gpt-4o-mini"})
    row = db.fetch_one("select user_id, usd, tokens from public.budget_reservations where litellm_call_id = 'call-1'")
    assert row == {"user_id": USER, "usd": Decimal("0.25"), "tokens": 30}
    stamped = db.fetch_one("select last_used_at from public.api_tokens where id = %s", (record.id,))
    assert stamped is not None and stamped["last_used_at"] is not None


def test_an_unknown_revoked_or_expired_key_reserves_nothing(db: Database) -> None:
    token, record = create_token(db, USER, name="soon revoked")
    assert admit(db, "lt_" + "x" * 43, "gpt-4o-mini", "unknown").access is None
    assert admit(db, "not a token", "gpt-4o-mini", "malformed").access is None
    revoke_token(db, str(record.id))
    assert admit(db, token, "gpt-4o-mini", "revoked").access is None
    expired, old = create_token(db, USER, name="expired")
    db.execute("update public.api_tokens set expires_at = now() - interval '1 second' where id = %s", (old.id,))
    assert admit(db, expired, "gpt-4o-mini", "expired").access is None
    assert _reservations(db) == []
    assert _refusals(db) == []


def test_a_model_outside_the_allow_list_reserves_nothing(db: Database) -> None:
    token, _ = create_token(db, USER, name="narrow", models=["gpt-4o"])
    admission = admit(db, token, "gpt-4o-mini", "not-allowed")
    assert admission.access is not None and not admission.reserved
    assert _reservations(db) == []
    assert _refusals(db) == []  # not a budget's refusal


def test_a_budget_or_rate_limit_refuses_as_a_reservation_does_and_is_counted(db: Database) -> None:
    token, _ = create_token(db, USER, name="limited")
    api.set_budget(db, USER, "daily", limit_usd=Decimal("0.4"))
    assert admit(db, token, "gpt-4o-mini", "first").reserved
    with pytest.raises(BudgetExceeded) as refused:
        admit(db, token, "gpt-4o-mini", "second")
    assert refused.value.reserved == Decimal("0.25") and refused.value.requested == Decimal("0.25")
    api.set_budget(db, USER, "daily", limit_usd=Decimal("10"))  # room again: the rate limit refuses
    api.set_rate_limit(db, USER, rpm=1, tpm=None)
    assert admit(db, token, "gpt-4o-mini", "third").reserved
    with pytest.raises(RateLimited):
        admit(db, token, "gpt-4o-mini", "fourth")
    assert sorted(_reservations(db)) == ["first", "third"]
    assert _refusals(db) == [(USER, "budget", 1), (USER, "rpm", 1)]
