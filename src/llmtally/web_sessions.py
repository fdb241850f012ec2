"""Login sessions of the chat app that the server can end (table ``web_sessions``, migration 0011).

The chat's login cookie is a signed JWT, which alone stays valid until it expires. Each login also
gets a row here; its id travels in the JWT (``metadata.session``) and the server accepts the cookie
only while the row is the JWT's user's, not revoked and not expired. Logout, an administrator's
``llmtally users revoke-sessions USER`` and the removal of a password login from ``LLMTALLY_USERS``
revoke rows: the cookie stops working on the next request, and an open chat socket on its next event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from llmtally.db.database import Database
from llmtally.db.queries import query

DEFAULT_LIFETIME = dt.timedelta(hours=12)


@dataclass(frozen=True)
class WebSession:
    id: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class RemovedLogins:
    """What the app did at start for password logins no longer in LLMTALLY_USERS."""

    revoked_sessions: dict[str, int]  # user id -> sessions revoked
    live_tokens: dict[str, int]  # user id -> API tokens that still work


def _uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def create_session(db: Database, user_id: str, provider: str, lifetime: dt.timedelta = DEFAULT_LIFETIME) -> WebSession:
    rows = db.fetch_all_in_transaction(
        query("create_web_session"),
        {"user_id": user_id, "provider": provider, "lifetime_seconds": lifetime.total_seconds()},
    )
    return WebSession(id=rows[0]["id"], expires_at=rows[0]["expires_at"])


def active_session(db: Database, session_id: str, user_id: str) -> WebSession | None:
    """The session when it belongs to ``user_id`` and is neither revoked nor expired."""
    if not _uuid(session_id):
        return None
    row = db.fetch_one(query("active_web_session"), {"session_id": session_id, "user_id": user_id})
    return None if row is None else WebSession(id=session_id, expires_at=row["expires_at"])


def revoke_session(db: Database, session_id: str, why: str = "logout") -> bool:
    if not _uuid(session_id):
        return False
    return db.execute(query("revoke_web_session"), {"session_id": session_id, "why": why}) > 0


def revoke_user_sessions(db: Database, user_id: str, why: str = "revoked by an administrator") -> int:
    """End every active session of a user; the number ended."""
    return db.execute(query("revoke_user_web_sessions"), {"user_id": user_id, "why": why})


def revoke_user_tokens(db: Database, user_id: str) -> int:
    """Revoke every API token of a user; the number revoked."""
    return db.execute(query("revoke_user_api_tokens"), {"user_id": user_id})


def revoke_removed_password_logins(db: Database, kept_user_ids: frozenset[str]) -> RemovedLogins:
    """End the sessions of password logins not in ``kept_user_ids``; report their API tokens, which stay."""
    params = {"kept": sorted(kept_user_ids)}
    revoked: dict[str, int] = {}
    for row in db.fetch_all_in_transaction(query("revoke_removed_password_sessions"), params):
        revoked[row["user_id"]] = revoked.get(row["user_id"], 0) + 1
    tokens = {row["user_id"]: int(row["tokens"]) for row in db.fetch_all(query("removed_password_tokens"), params)}
    return RemovedLogins(revoked_sessions=revoked, live_tokens=tokens)
