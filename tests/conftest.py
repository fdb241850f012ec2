"""Shared fixtures: real PostgreSQL servers, a migrated template, one fresh database per test.

Database tests run on the embedded PostgreSQL 18. Tests whose subject is SQL (marked ``sql``) also run on
the server named by TEST_DATABASE_URL when it is set: they are parametrized by backend. Each test gets its
own database cloned from a template migrated once per run (once per xdist worker).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The CLI's rich console takes its width from COLUMNS when it is created; xdist workers set 80, which wraps
# the ids and paths the CLI tests look for. Commands run in process (tests/support/cli.py) see 200 columns.
os.environ["COLUMNS"] = "200"

from llmtally.db import Database, EmbeddedServer
from llmtally.db.migrations import migrate
from tests.support.cluster import Cluster, make_throwaway
from tests.support.supabase_shape import shape_like_supabase

BACKENDS = ["embedded"] + (["external"] if os.environ.get("TEST_DATABASE_URL") else [])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``sql`` (their subject is SQL) run on every server; the others on the embedded one."""
    if "backend" in metafunc.fixturenames:
        every = metafunc.definition.get_closest_marker("sql") is not None
        metafunc.parametrize("backend", BACKENDS if every else BACKENDS[:1], scope="session")


@pytest.fixture(scope="session")
def embedded_cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp dir: the server runs as an unprivileged user that must reach it.
    home = Path(tempfile.mkdtemp(prefix="llmtally-test-"))
    server = EmbeddedServer(home)
    admin = server.admin_url()
    make_throwaway(admin)
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
    """Like ``template``, on a database shaped like a fresh Supabase project (tests/support/supabase_shape.py)."""
    name = cluster.create_database()
    shape_like_supabase(cluster.url(name))
    with Database(cluster.url(name)) as db:
        migrate(db)
    return name


@pytest.fixture
def db_url(cluster: Cluster, template: str) -> Iterator[str]:
    """A fresh, migrated database of its own for one test."""
    with cluster.database(template) as url:
        yield url


@pytest.fixture
def supabase_db_url(cluster: Cluster, supabase_template: str) -> Iterator[str]:
    """A fresh, migrated database shaped like a Supabase project, for one test."""
    with cluster.database(supabase_template) as url:
        yield url


@pytest.fixture(params=["postgres", "supabase"])
def any_db_url(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[str]:
    """A fresh, migrated database: plain PostgreSQL, then one shaped like a Supabase project.

    A module that overrides ``db_url`` with this runs each of its tests on both.
    """
    template = request.getfixturevalue("template" if request.param == "postgres" else "supabase_template")
    with cluster.database(template) as url:
        yield url


@pytest.fixture(scope="module", params=["postgres", "supabase"])
def module_any_db_url(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[str]:
    """Like ``any_db_url``, shared by one module's tests: for modules whose tests only read what was seeded.

    Such a module's tests must leave no committed change (each reads, or writes in a transaction it rolls back).
    """
    template = request.getfixturevalue("template" if request.param == "postgres" else "supabase_template")
    with cluster.database(template) as url:
        yield url


@pytest.fixture
def empty_db_url(cluster: Cluster) -> Iterator[str]:
    """A fresh database with nothing in it."""
    with cluster.database() as url:
        yield url


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


# Modules with the longest tests start first, so that no long test is left running alone at the end of a
# parallel run. Whole modules move, so module-scoped fixtures are still set up once per worker.
LONGEST_FIRST = ("bench", "e2e", "test_budgets.py", "test_concurrency.py", "test_fuzz.py", "test_api_schema.py")
LONGEST_FIRST += ("test_doc_snippets.py", "test_durability.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is ``e2e``; the benchmark smoke runs are ``slow``; the longest go first,
    each module's tests grouped by server."""
    for item in items:
        parts = item.path.parts
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
        if "bench" in parts:
            item.add_marker(pytest.mark.slow)

    def rank(item: pytest.Item) -> tuple[int, str, int]:
        parts = set(item.path.parts)
        first = next((i for i, name in enumerate(LONGEST_FIRST) if name in parts), len(LONGEST_FIRST))
        # Then one server's tests together, so a worker that takes them sets its per-server fixtures up once.
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        return first, str(item.path), BACKENDS.index(backend) if backend in BACKENDS else 0

    items.sort(key=rank)
