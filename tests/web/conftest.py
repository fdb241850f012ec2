"""Fixtures for the JSON API and pages, in process over a real database: three users and their tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally.api_tokens import create_token
from llmtally.app.web import WebState, install_web
from llmtally.app.web.api import build_api
from llmtally.db import Database
from tests.support.web_seed import ADA, BOB, ROOT, Api, seed


@pytest.fixture
def seeded_db(db_url: str) -> Iterator[Database]:
    seed(db_url)
    with Database(db_url) as db:
        yield db


@pytest.fixture
def state(seeded_db: Database) -> WebState:
    return WebState(db=seeded_db, admins=frozenset({ROOT}), show_content=True)


@pytest.fixture
def api(seeded_db: Database, state: WebState) -> Iterator[Api]:
    app = build_api(state)
    tokens = {user: create_token(seeded_db, user, name="test")[0] for user in (ADA, BOB, ROOT)}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(seeded_db, client, app, tokens)


@pytest.fixture
def site(seeded_db: Database, state: WebState) -> Iterator[TestClient]:
    """The pages, the API under /api/v1 and /metrics on one app, as the server mounts them."""
    app = FastAPI()
    install_web(app, state)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client
