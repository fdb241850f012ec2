"""Administrators: by user id, or by an e-mail the login's provider verified; never a merely stored one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally import Ledger, Settings
from llmtally.api_tokens import create_token
from llmtally.app.identity import oauth_identity
from llmtally.app.web import WebState, install_web
from tests.support.sessions import as_session, use_secret
from tests.support.web_seed import ROOT

ATTACKER = "generic_attacker-subject"


@pytest.fixture
def by_email(state: WebState, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """LLMTALLY_ADMINS names an e-mail; an attacker's account has that e-mail stored, unverified."""
    use_secret(monkeypatch)
    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.upsert_user_sync(ATTACKER, email="root@example.com", full_name="Mallory", provider="generic")
    app = FastAPI()
    install_web(app, dataclasses.replace(state, admins=frozenset({"root@example.com"})))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client


def test_a_stored_unverified_email_does_not_make_an_admin(state: WebState, by_email: TestClient) -> None:
    assert by_email.get("/admin", headers=as_session(state.db, ATTACKER)).status_code == 403
    assert by_email.get("/api/v1/admin/export", headers=as_session(state.db, ATTACKER)).status_code == 403


def test_an_email_verified_at_login_makes_an_admin(state: WebState, by_email: TestClient) -> None:
    verified = as_session(state.db, ATTACKER, verified_email="Root@Example.com")
    assert by_email.get("/admin", headers=verified).status_code == 200
    assert by_email.get("/api/v1/admin/users", headers=verified).status_code == 200


def test_an_api_token_is_an_admin_only_by_user_id(state: WebState, by_email: TestClient) -> None:
    token = {"Authorization": f"Bearer {create_token(state.db, ROOT)[0]}"}  # ROOT's stored e-mail is listed
    assert by_email.get("/api/v1/admin/users", headers=token).status_code == 403
    app = FastAPI()
    install_web(app, dataclasses.replace(state, admins=frozenset({ROOT})))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/admin/users", headers=token).status_code == 200


@pytest.mark.parametrize(
    ("raw", "email", "verified"),
    [
        ({"sub": "1", "email": "root@example.com", "email_verified": False}, "root@example.com", None),
        ({"sub": "1", "email": "root@example.com"}, "root@example.com", None),
        ({"sub": "1", "email": "root@example.com", "email_verified": "false"}, "root@example.com", None),
        ({"sub": "1", "email": "root@example.com", "email_verified": True}, "root@example.com", "root@example.com"),
        ({"sub": "1", "email": "root@example.com", "email_verified": "true"}, "root@example.com", "root@example.com"),
        ({"sub": "1", "email": "root@example.com", "verified_email": True}, "root@example.com", "root@example.com"),
        ({"oid": "1", "mail": "root@example.com", "email_verified": True}, None, None),
        ({"oid": "1", "userPrincipalName": "root@example.com", "email_verified": True}, None, None),
        ({"sub": "1", "preferred_username": "root@example.com", "email_verified": True}, None, None),
        (
            {"id": 1, "email": "root@example.com", "emails": [{"email": "root@example.com", "verified": False}]},
            "root@example.com",
            None,
        ),
        (
            {"id": 1, "email": "Root@example.com", "emails": [{"email": "root@example.com", "verified": True}]},
            "Root@example.com",
            "Root@example.com",
        ),
    ],
)
def test_oauth_identity_verified_email(raw: dict[str, object], email: str | None, verified: str | None) -> None:
    identity = oauth_identity("generic", raw, None)
    assert identity is not None
    assert (identity.email, identity.verified_email) == (email, verified)
