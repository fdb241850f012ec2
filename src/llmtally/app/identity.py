"""Who a logged-in person is: ``{provider}_{stable subject}``, never the e-mail address.

Chainlit's built-in OAuth providers use the e-mail (GitHub: the login) as the user's identifier; both
can change. The provider's stable id is in ``raw_user_data``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Where each provider keeps its stable subject id in the user info it returns.
_SUBJECT_KEYS = ("sub", "oid", "id", "user_id", "userId")


@dataclass(frozen=True)
class Identity:
    user_id: str
    provider: str
    email: str | None
    full_name: str | None


def _first(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def oauth_identity(provider: str, raw_user_data: Mapping[str, Any], fallback_name: str | None) -> Identity | None:
    """The identity behind an OAuth login, or None when the provider gave no stable subject."""
    subject = _first(raw_user_data, *_SUBJECT_KEYS)
    if subject is None:
        log.error(
            "OAuth login through %s refused: no stable subject id (%s) in the user info",
            provider,
            "/".join(_SUBJECT_KEYS),
        )
        return None
    email = _first(raw_user_data, "email", "mail", "userPrincipalName", "preferred_username")
    name = _first(raw_user_data, "name", "displayName", "login", "preferred_username") or fallback_name
    return Identity(user_id=f"{provider}_{subject}", provider=provider, email=email, full_name=name)


def password_identity(username: str) -> Identity:
    return Identity(user_id=f"password_{username}", provider="password", email=None, full_name=username)
