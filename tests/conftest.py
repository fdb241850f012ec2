"""Shared fixtures: real PostgreSQL servers, a migrated template, one fresh database per test.

Database tests run on the embedded PostgreSQL 18 and, when TEST_DATABASE_URL is set, also on that
server (each test is parametrized by backend). Each test gets its own database cloned from a
template migrated once per run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmtally.db import Database, EmbeddedServer
from llmtally.db.migrations import migrate
from tests.db.supabase_shape import shape_like_supabase

BACKENDS = ["embedded"] + (["external"] if os.environ.get("TEST_DATABASE_URL") else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, scope="session")


def _with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class Cluster:
    """A PostgreSQL server we may create databases on."""

    def __init__(self, admin_url: str, *, embedded: EmbeddedServer | None = None) -> None:
        self.admin_url = admin_url
        self.embedded = embedded
        self.created: list[str] = []

    def url(self, dbname: str) -> str:
        return _with_database(self.admin_url, dbname)

    def create_database(self, template: str | None = None) -> str:
        name = f"llmtally_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop_database(name)


@pytest.fixture(scope="session")
def embedded_cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp dir: the server runs as an unprivileged user that must reach it.
    home = Path(tempfile.mkdtemp(prefix="llmtally-test-"))
    server = EmbeddedServer(home)
    admin = server.admin_url()
    cluster = Cluster(admin, embedded=server)
    yield cluster
    cluster.drop_all()
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def cluster(backend: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if backend == "embedded":
        yield request.getfixturevalue("embedded_cluster")
        return
    external = Cluster(os.environ["TEST_DATABASE_URL"])
    yield external
    external.drop_all()


@pytest.fixture(scope="session")
def template(cluster: Cluster) -> str:
    name = cluster.create_database()
    with Database(cluster.url(name)) as db:
        migrate(db)
    return name


@pytest.fixture(scope="session")
def supabase_template(cluster: Cluster) -> str:
    """Like ``template``, on a database shaped like a fresh Supabase project (tests/db/supabase_shape.py)."""
    name = cluster.create_database()
    shape_like_supabase(cluster.url(name))
    with Database(cluster.url(name)) as db:
        migrate(db)
    return name


@pytest.fixture
def db_url(cluster: Cluster, template: str) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    name = cluster.create_database(template=template)
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def supabase_db_url(cluster: Cluster, supabase_template: str) -> Iterator[str]:
    """A fresh, migrated database shaped like a Supabase project, for one test."""
    name = cluster.create_database(template=supabase_template)
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture(params=["postgres", "supabase"])
def any_db_url(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated database: plain PostgreSQL, then one shaped like a Supabase project.

    A module that overrides ``db_url`` with this runs each of its tests on both.
    """
    template = request.getfixturevalue("template" if request.param == "postgres" else "supabase_template")
    name = cluster.create_database(template=template)
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def empty_db_url(cluster: Cluster) -> Iterator[str]:
    """A fresh database with nothing in it."""
    name = cluster.create_database()
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def empty_supabase_db_url(cluster: Cluster) -> Iterator[str]:
    """A fresh database shaped like a new Supabase project, before any llmtally migration."""
    name = cluster.create_database()
    shape_like_supabase(cluster.url(name))
    yield cluster.url(name)
    cluster.drop_database(name)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    with Database(db_url) as database:
        yield database


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's llmtally settings; LLMTALLY_HOME points at a temp dir."""
    for key in list(os.environ):
        if key.startswith("LLMTALLY_") or key in {
            "DATABASE_URL",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_SECRET_KEY",
        }:
            monkeypatch.delenv(key)
    monkeypatch.setenv("LLMTALLY_HOME", str(tmp_path / "home"))


@pytest.fixture
def cluster_admin_url(cluster: Cluster) -> str:
    """A libpq connection string for the server's maintenance database."""
    return psycopg.conninfo.make_conninfo(cluster.admin_url, dbname="postgres")
