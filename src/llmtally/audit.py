"""The audit log: who changed a budget, a rate limit, a price or an API token, or deleted a user.

Triggers write it in the transaction of each change (migration 0017), naming the actor the change
was made for (:func:`llmtally.db.acting_as`: ``web:USER`` from the admin pages, ``cli:OS_USER`` from
the command line, ``sql:LOGIN`` for a change made outside llmtally). This module reads it and says
each entry in words.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from llmtally.db.database import Database
from llmtally.db.queries import query

_OBJECTS = {
    "budgets": "budget",
    "rate_limits": "rate limit",
    "model_prices": "price",
    "api_tokens": "API token",
    "user_profiles": "user",
    "request_logs": "stored costs",
    "teams": "team",
    "team_members": "team member",
}
# Columns that say nothing a reader needs: when the row changed is the entry's own time.
_QUIET_WHEN_OFF = frozenset({"end_users"})  # a token's option, shown only when it is on
_QUIET = frozenset({"id", "updated_at", "created_at", "last_used_at", "prefix", "user_profile_id"})


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str  # insert, update, delete, reprice
    object: str  # the table changed
    subject: str  # a user id, "default", a model, a token's prefix and user
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def what(self) -> str:
        """The change in a few words: "set budget", "deleted API token", "repriced stored costs"."""
        thing = _OBJECTS.get(self.object, self.object)
        if self.action == "reprice":
            return "repriced stored costs"
        if self.object == "api_tokens" and self.action == "insert":
            return "created API token"
        if self.object == "api_tokens" and self.action == "update" and (self.after or {}).get("revoked_at"):
            return "revoked API token"
        if self.object in ("teams", "team_members") and self.action in ("insert", "delete"):
            verbs = {
                "teams": {"insert": "created", "delete": "deleted"},
                "team_members": {"insert": "added", "delete": "removed"},
            }
            return f"{verbs[self.object][self.action]} {thing}"
        verb = {"insert": "set", "update": "changed", "delete": "deleted"}[self.action]
        return f"{verb} {thing}"

    @property
    def detail(self) -> str:
        """What the row holds now, or held before a deletion; for an update, only the fields that changed."""
        if self.action == "reprice":
            changed = (self.after or {}).get("rows_changed", 0)
            return f"{changed:,} row{'' if changed == 1 else 's'} changed"
        before, after = self.before or {}, self.after or {}
        if self.action == "update":
            fields = {k: after.get(k) for k in after if k not in _QUIET and before.get(k) != after.get(k)}
            return ", ".join(f"{k}: {_shown(before.get(k))} → {_shown(v)}" for k, v in fields.items())
        row = after or before
        return ", ".join(
            f"{k}: {_shown(v)}"
            for k, v in row.items()
            if k not in _QUIET and v not in (None, "") and not _default(k, v)
        )


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def audit_entries(
    db: Database, *, limit: int = 100, before: int | None = None, who: str | None = None
) -> list[AuditEntry]:
    """Entries newest first: ``limit`` of them older than entry ``before``; of actor or subject ``who``."""
    rows = db.fetch_all(query("audit_entries"), {"limit": limit, "before": before, "who": who})
    return [AuditEntry(**row) for row in rows]


def _default(key: str, value: Any) -> bool:
    return key in _QUIET_WHEN_OFF and value is False
