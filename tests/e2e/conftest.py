"""End-to-end fixtures: the real chat server, started once per module on a database of that module.

Starting ``llmtally up`` costs seconds (LiteLLM and Chainlit are imported), so a module's tests share
one server. Before each test the module's database is emptied (tests/support/reset.py), so every test
starts from an empty ledger as it would on a new database. Tests that need a server configured their
own way start it themselves with ``run_server`` on ``db_url``, which is the same module database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.browser import chromium_or_skip
from tests.support.cluster import Cluster
from tests.support.reset import reset_ledger
from tests.support.server import Server, run_server


@pytest.fixture(scope="module")
def module_db_url(cluster: Cluster, template: str) -> Iterator[str]:
    with cluster.database(template) as url:
        yield url


@pytest.fixture
def db_url(module_db_url: str) -> str:
    """The module's database, emptied before the test."""
    reset_ledger(module_db_url)
    return module_db_url


@pytest.fixture(scope="module")
def module_server(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with run_server(module_db_url, tmp_path_factory.mktemp("home")) as running:
        yield running


@pytest.fixture
def server(module_server: Server, db_url: str) -> Server:
    """The module's server, on its database emptied before the test."""
    if module_server.process.poll() is not None:
        raise AssertionError(f"the module's server exited:\n{module_server.output()}")
    return module_server


@pytest.fixture
def chromium_path() -> str:
    return chromium_or_skip()
