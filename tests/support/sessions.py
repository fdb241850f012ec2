"""Chainlit session JWTs for in-process tests, signed as Chainlit signs them (HS256, CHAINLIT_AUTH_SECRET)."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest

SECRET = "test-secret-for-session-cookies-0123456789"


def use_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", SECRET)


def session_jwt(user_id: str, **metadata: str) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "identifier": user_id,
        "display_name": user_id,
        "metadata": {"provider": user_id.partition("_")[0], **metadata},
        "iat": now,
        "exp": now + dt.timedelta(hours=1),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def as_session(user_id: str, **metadata: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session_jwt(user_id, **metadata)}"}
