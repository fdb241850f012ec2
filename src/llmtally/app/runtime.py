"""What the Chainlit handlers need at run time, set once by the server before Chainlit loads them.

Chainlit imports its handler module by path and calls plain functions, so the handlers reach the
ledger and the database through this one holder.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmtally.app.config import AppSettings, PasswordLogins
from llmtally.app.models import ModelChoice
from llmtally.db.database import Database
from llmtally.ledger.ledger import Ledger
from llmtally.settings import Settings


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    app: AppSettings
    ledger: Ledger
    db: Database  # the app's own pool: threads, usage panel
    logins: PasswordLogins
    models: tuple[ModelChoice, ...]


class _Holder:
    current: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    _Holder.current = runtime


def get_runtime() -> Runtime:
    if _Holder.current is None:
        raise RuntimeError("the llmtally chat app is not started")
    return _Holder.current
