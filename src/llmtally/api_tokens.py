"""Per-user API tokens for the JSON API and the gateway's keys: issued and revoked by an administrator,
stored hashed. A token may be limited to some of the gateway's models.

A token is ``lt_`` followed by 43 URL-safe random characters (256 bits). Only its SHA-256 is
stored; the token itself is shown once, when it is created. Requests send it in the
``Authorization: Bearer`` header, never in a URL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import UnknownUser, UserInputError

PREFIX = "lt_"
_SHOWN = 10  # characters of the token kept (with the prefix) to recognise it in listings


class ApiToken(BaseModel):
    """What is stored about a token: never the token itself."""

    model_config = ConfigDict(frozen=True)

    id: int
    user_id: str
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    models: list[str] | None = None  # the gateway models it may use; None: every model
    end_users: bool = False  # the gateway stores a request's `user` as the call's end user

    @property
    def active(self) -> bool:
        now = dt.datetime.now(dt.UTC)
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True)
class TokenAccess:
    """What a valid token grants: its user (or team), the gateway models it may use (None: every model),
    and whether a request may name its end user."""

    user_id: str
    models: frozenset[str] | None
    end_users: bool = False

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


def parse_models(value: str | Sequence[str] | None) -> list[str] | None:
    """A token's allowed models from a comma-separated list (or a list); empty or None: every model."""
    names = value.split(",") if isinstance(value, str) else list(value or [])
    models = sorted({name.strip() for name in names if name.strip()})
    return models or None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shown_prefix(token: str) -> str:
    """The start of a token kept to recognise it (``llmtally tokens list`` shows it): never enough to use it."""
    return token[:_SHOWN]


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX) and 20 <= len(value) <= 200


def create_token(
    db: Database,
    user_id: str,
    *,
    name: str = "",
    expires_at: dt.datetime | None = None,
    create_user: bool = False,
    models: Sequence[str] | None = None,
    end_users: bool = False,
) -> tuple[str, ApiToken]:
    """A new token for ``user_id`` (a user, or a team's ``team:SLUG``): the token, to show once, and its
    stored record. ``models`` limits what it may use through the gateway (None: every model); with
    ``end_users`` the gateway stores a request's ``user`` field as the call's end user.

    The user must exist, unless ``create_user`` (a script or service that never logs in): then its profile is
    created if it is missing.
    """
    if expires_at is not None and expires_at <= dt.datetime.now(dt.UTC):
        raise UserInputError(f"the expiry {expires_at:%Y-%m-%d %H:%M} UTC is in the past")
    if create_user:
        if not user_id.strip():
            raise UserInputError("the user id must not be empty")
        db.execute(query("upsert_user"), {"user_id": user_id, "email": None, "full_name": None, "provider": None})
    if not db.fetch_all(query("user_exists"), {"user_id": user_id}):
        raise UnknownUser(user_id)
    token = PREFIX + secrets.token_urlsafe(32)
    row = db.fetch_all_in_transaction(
        query("create_api_token"),
        {
            "user_id": user_id,
            "name": name,
            "token_hash": token_hash(token),
            "prefix": shown_prefix(token),
            "expires_at": expires_at,
            "models": parse_models(models),
            "end_users": end_users,
        },
    )[0]
    return token, ApiToken.model_validate(row)


def list_tokens(db: Database, user_id: str | None = None) -> list[ApiToken]:
    return [ApiToken.model_validate(r) for r in db.fetch_all(query("list_api_tokens"), {"user_id": user_id})]


def revoke_token(db: Database, key: str) -> ApiToken:
    """Revoke the active token with this id or prefix (as `llmtally tokens list` shows them).

    Two tokens sharing a 7-character random prefix are vanishingly rare; both would be revoked.
    """
    rows = db.fetch_all_in_transaction(query("revoke_api_token"), {"key": key})
    if not rows:
        raise UserInputError(f"no active token {key!r} (see `llmtally tokens list`)")
    return ApiToken.model_validate(rows[0])


def token_access(db: Database, token: str) -> TokenAccess | None:
    """What a valid (known, unrevoked, unexpired) token grants, else None."""
    if not looks_like_token(token):
        return None
    rows = db.fetch_all_autocommit(query("check_api_token"), {"token_hash": token_hash(token)})
    return access_of(rows[0]) if rows else None


def access_of(row: dict[str, Any]) -> TokenAccess:
    """A valid token's grant from its row (``user_id``, ``models``, ``end_users``)."""
    models = row["models"]
    return TokenAccess(str(row["user_id"]), None if models is None else frozenset(models), bool(row["end_users"]))


def token_user(db: Database, token: str) -> str | None:
    """The user a valid (known, unrevoked, unexpired) token belongs to, else None."""
    access = token_access(db, token)
    return None if access is None else access.user_id
