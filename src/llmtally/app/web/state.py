"""What the web routes need: the database, who the administrators are, the content mode."""

from __future__ import annotations

from dataclasses import dataclass

from llmtally.db.database import Database


@dataclass(frozen=True)
class WebState:
    db: Database
    admins: frozenset[str]  # user ids (exact) or e-mail addresses (any case)
    show_content: bool  # Settings.content == "full"
    metrics_token: str | None = None
    # /metrics without a token: only when the server listens on loopback and trusts no proxy headers
    metrics_local: bool = True
    # user ids of the configured password logins: a session of another password login has ended.
    # None: not checked (the app always sets it).
    password_users: frozenset[str] | None = None

    def is_admin(self, user_id: str, verified_email: str | None) -> bool:
        """By user id; by e-mail only when the login's provider verified that e-mail (never one merely
        stored in user_profiles, which any provider, or the user, may have set)."""
        if user_id in self.admins:
            return True
        if verified_email:
            wanted = {a.lower() for a in self.admins if "@" in a}
            return verified_email.lower() in wanted
        return False
