"""Server-side login sessions (web_sessions, migration 0011) and the session map that keeps its user."""

from __future__ import annotations

import datetime as dt

import pytest

from llmtally import privacy
from llmtally.api_tokens import create_token, token_user
from llmtally.db import Database
from llmtally.errors import LlmtallyError
from llmtally.web_sessions import (
    active_session,
    create_session,
    revoke_removed_password_logins,
    revoke_session,
    revoke_user_sessions,
)

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)


def test_sessions_end_by_logout_revoke_expiry_and_user(db: Database) -> None:
    first = create_session(db, "password_alice", "password", dt.timedelta(hours=1))
    second = create_session(db, "password_alice", "password")
    other = create_session(db, "password_bob", "password")
    assert active_session(db, first.id, "password_alice") is not None
    assert active_session(db, first.id, "password_bob") is None  # another user's session id
    assert active_session(db, "not-a-uuid", "password_alice") is None
    assert revoke_session(db, first.id) and not revoke_session(db, first.id)
    assert active_session(db, first.id, "password_alice") is None
    assert revoke_user_sessions(db, "password_alice") == 1
    assert active_session(db, second.id, "password_alice") is None
    assert active_session(db, other.id, "password_bob") is not None
    db.execute("update web_sessions set expires_at = now() - interval '1 second' where id = %s", (other.id,))
    assert active_session(db, other.id, "password_bob") is None


def test_removed_password_logins_lose_their_sessions_and_are_told_about_tokens(db: Database) -> None:
    kept = create_session(db, "password_alice", "password")
    gone = create_session(db, "password_bob", "password")
    oauth = create_session(db, "github_42", "github")
    db.fetch_all("select public.llmtally_upsert_user('password_bob', null, null, 'password')")
    token, _ = create_token(db, "password_bob")
    report = revoke_removed_password_logins(db, frozenset({"password_alice"}))
    assert report.revoked_sessions == {"password_bob": 1} and report.live_tokens == {"password_bob": 1}
    assert active_session(db, gone.id, "password_bob") is None
    assert active_session(db, kept.id, "password_alice") is not None
    assert active_session(db, oauth.id, "github_42") is not None  # not a password login
    assert token_user(db, token) == "password_bob"  # said plainly; `revoke-sessions --tokens` revokes it


def test_deleting_a_user_ends_their_sessions(db: Database) -> None:
    db.fetch_all("select public.llmtally_upsert_user('github_7', null, null, 'github')")
    session = create_session(db, "github_7", "github")
    privacy.delete_user(db, "github_7")
    assert active_session(db, session.id, "github_7") is None


def test_no_client_role_reads_sessions(db: Database) -> None:
    create_session(db, "password_alice", "password")
    for role in ("anon", "authenticated"):
        with pytest.raises(LlmtallyError, match="permission denied"), db.transaction() as conn:
            conn.execute(f"set local role {role}")
            conn.execute("select * from public.web_sessions")
