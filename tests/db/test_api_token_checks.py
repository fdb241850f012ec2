"""The check of an ``lt_`` key on every gateway request: one read, and a write at most once a minute."""

from __future__ import annotations

import pytest

from llmtally.api_tokens import create_token, revoke_token, token_access
from llmtally.db import Database

pytestmark = pytest.mark.sql

USER = "google_key_checked"


@pytest.fixture(autouse=True)
def _user(db: Database) -> None:
    db.execute("select public.llmtally_upsert_user(%s)", (USER,))


def _version(db: Database, token_id: int) -> tuple[str, object]:
    row = db.fetch_one("select xmin::text as version, last_used_at from public.api_tokens where id = %s", (token_id,))
    assert row is not None
    return str(row["version"]), row["last_used_at"]


def test_a_key_used_again_within_the_minute_writes_nothing_and_a_stale_one_is_refreshed(db: Database) -> None:
    token, record = create_token(db, USER, name="checked")
    access = token_access(db, token)
    assert access is not None and access.user_id == USER
    first = _version(db, record.id)
    assert first[1] is not None  # the first use is stamped
    for _ in range(3):
        assert token_access(db, token) is not None
    assert _version(db, record.id) == first  # no new row version: nothing written, nothing to flush
    db.execute("update public.api_tokens set last_used_at = now() - interval '2 minutes' where id = %s", (record.id,))
    stale = _version(db, record.id)
    assert token_access(db, token) is not None
    refreshed = _version(db, record.id)
    assert refreshed[0] != stale[0] and refreshed[1] > stale[1]  # type: ignore[operator]


def test_a_revoked_or_expired_key_is_refused_at_once(db: Database) -> None:
    token, record = create_token(db, USER, name="revoked")
    assert token_access(db, token) is not None
    revoke_token(db, str(record.id))
    assert token_access(db, token) is None
    expired, old = create_token(db, USER, name="expired")
    db.execute("update public.api_tokens set expires_at = now() - interval '1 second' where id = %s", (old.id,))
    assert token_access(db, expired) is None
