"""The audit log's triggers (migration 0017): every change of a budget, limit, price or token and every
user deletion is logged in the transaction that made it, with who made it, and nothing else is."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from llmtally import budgets, prices
from llmtally.api_tokens import create_token, revoke_token, token_user
from llmtally.audit import audit_entries
from llmtally.db import Database, acting_as
from llmtally.errors import LlmtallyError
from llmtally.privacy import delete_user
from tests.support.cli import llmtally

pytestmark = pytest.mark.sql

USER = "google_audited"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database(db_url) as database:
        database.execute("select public.llmtally_upsert_user(%s)", (USER,))
        yield database


def test_a_change_names_who_made_it_and_a_change_outside_llmtally_its_login(db: Database) -> None:
    with acting_as("web:password_root"):
        budgets.set_budget(db, USER, "daily", limit_usd=Decimal("2"))
    db.execute("update public.budgets set limit_usd = 3 where user_profile_id = %s", (USER,))
    login = db.fetch_one("select session_user as login")
    assert login is not None
    newest, first = audit_entries(db)
    assert (first.actor, first.action, first.subject, first.after and first.after["limit_usd"]) == (
        "web:password_root",
        "insert",
        f"{USER} daily",
        2,
    )
    assert newest.actor == f"sql:{login['login']}" and newest.what == "changed budget"
    assert newest.detail == "limit_usd: 2 → 3"


def test_a_rolled_back_change_leaves_no_entry(db: Database) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute(
            "insert into public.model_prices (model, input_cost_per_token, output_cost_per_token) values ('x', 0, 0)"
        )
        raise RuntimeError("abandoned")
    assert audit_entries(db) == [] and prices.list_prices(db) == []


def test_a_tokens_use_is_not_logged_and_its_hash_never_is(db: Database) -> None:
    token, record = create_token(db, USER, name="ci")
    for _ in range(3):
        assert token_user(db, token) == USER  # each use sets last_used_at
    db.execute("update public.api_tokens set models = array['gpt-4o-mini'] where id = %s", (record.id,))
    revoke_token(db, str(record.id))
    entries = audit_entries(db)
    assert [e.what for e in entries] == ["revoked API token", "changed API token", "created API token"]
    assert entries[1].detail == "models: none → [gpt-4o-mini]"
    assert all("token_hash" not in (e.before or {}) and "token_hash" not in (e.after or {}) for e in entries)
    assert entries[0].subject == f"{record.prefix}… of {USER}"
    assert entries[2].detail == f"name: ci, user_id: {USER}"  # what it was made with; nothing empty


def test_deleting_a_user_logs_the_user_and_what_went_with_them(db: Database) -> None:
    budgets.set_rate_limit(db, USER, rpm=5, tpm=None)
    with acting_as("cli:ops"):
        delete_user(db, USER)
    logged = [(e.actor, e.what, e.subject) for e in audit_entries(db)]
    assert ("cli:ops", "deleted user", USER) in logged
    assert ("cli:ops", "deleted rate limit", USER) in logged  # removed with the user, by the same hand


def test_the_log_is_the_servers_alone(db: Database) -> None:
    budgets.set_rate_limit(db, None, rpm=1, tpm=None)
    with pytest.raises(LlmtallyError, match="permission denied"):
        db.fetch_all_as_user(USER, "select * from public.audit_log")
    with pytest.raises(LlmtallyError, match="permission denied"):
        db.fetch_all_as_user(
            USER, "insert into public.audit_log (actor, action, object, subject) values ('me', 'insert', 'x', 'y')"
        )


def test_the_cli_names_the_operating_system_user_and_lists_the_log(db: Database, db_url: str) -> None:
    assert llmtally("limits", "set", USER, "--rpm", "7", database_url=db_url).returncode == 0
    [entry] = audit_entries(db)
    assert entry.actor.startswith("cli:") and entry.what == "set rate limit" and "rpm: 7" in entry.detail
    shown = llmtally("audit", database_url=db_url)
    assert shown.returncode == 0 and "1 change" in shown.stdout and entry.actor in shown.stdout
    assert "set rate limit" in shown.stdout and USER in shown.stdout
    none = llmtally("audit", "--who", "web:nobody", database_url=db_url)
    assert none.returncode == 0 and "no changes by or to web:nobody" in none.stdout
