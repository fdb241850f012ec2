"""Who a logged-in person is: ``{provider}_{stable subject}``, never the e-mail address.

Chainlit's built-in OAuth providers use the e-mail (GitHub: the login) as the user's identifier; both
can change. The provider's stable id is in ``raw_user_data``.

An e-mail address is taken only from the provider's ``email`` claim, and it counts as verified (and so
may make its owner an administrator) only when the provider says so: ``email_verified`` true (OpenID
Connect), ``verified_email`` true (Google's older user info) or a verified entry in GitHub's ``emails``.
Attributes a user or a tenant can set (``mail``, ``userPrincipalName``, ``preferred_username``) are
never taken for an e-mail.
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
    email_verified: bool = False

    @property
    def verified_email(self) -> str | None:
        """The e-mail address, when the provider verified it; the only one that may grant admin rights."""
        return self.email if self.email_verified else None


def _first(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")  # Cognito sends "true"


def email_verified(raw_user_data: Mapping[str, Any], email: str) -> bool:
    """Whether the provider itself says that ``email`` is verified."""
    if _true(raw_user_data.get("email_verified")) or _true(raw_user_data.get("verified_email")):
        return True
    emails = raw_user_data.get("emails")  # GitHub: [{"email", "primary", "verified"}, ...]
    if isinstance(emails, list):
        return any(
            isinstance(entry, Mapping)
            and str(entry.get("email", "")).lower() == email.lower()
            and entry.get("verified") is True
            for entry in emails
        )
    return False


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
    email = _first(raw_user_data, "email")
    name = _first(raw_user_data, "name", "displayName", "login", "preferred_username") or fallback_name
    return Identity(
        user_id=f"{provider}_{subject}",
        provider=provider,
        email=email,
        full_name=name,
        email_verified=email is not None and email_verified(raw_user_data, email),
    )


def password_identity(username: str) -> Identity:
    return Identity(user_id=f"password_{username}", provider="password", email=None, full_name=username)
