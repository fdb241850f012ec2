"""Chainlit session JWTs for in-process tests, signed as Chainlit signs them (HS256, CHAINLIT_AUTH_SECRET),
each naming a real server-side session (web_sessions) as a login through the chat does."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

from llmtally.db import Database
from llmtally.web_sessions import create_session

SECRET = "test-secret-for-session-cookies-0123456789"


def use_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", SECRET)


def session_jwt(db: Database, user_id: str, **metadata: str) -> str:
    provider = user_id.partition("_")[0]
    session = create_session(db, user_id, provider)
    now = dt.datetime.now(dt.UTC)
    claims = {
        "identifier": user_id,
        "display_name": user_id,
        "metadata": {"provider": provider, "session": session.id, **metadata},
        "iat": now,
        "exp": now + dt.timedelta(hours=1),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def as_session(db: Database, user_id: str, **metadata: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session_jwt(db, user_id, **metadata)}"}
