"""End-to-end fixtures: the real chat server on a fresh migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import Server, run_server


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    with run_server(db_url, tmp_path / "home") as running:
        yield running
