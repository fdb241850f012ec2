"""/healthz answers without a login and never shows the database's error text."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.cluster import Cluster
from tests.support.server import run_server


def test_healthz_says_the_database_is_unreachable_and_nothing_more(
    cluster: Cluster, template: str, tmp_path: Path
) -> None:
    name = cluster.create_database(template)
    try:
        with run_server(cluster.url(name), tmp_path / "home") as server:
            healthy = httpx.get(f"{server.url}/healthz", timeout=10)
            assert healthy.status_code == 200 and healthy.json()["status"] == "ok"
            cluster.drop_database(name)  # the database goes away under the running app
            down = httpx.get(f"{server.url}/healthz", timeout=30)
            assert down.status_code == 503
            assert down.json() == {"status": "error", "database": "unreachable"}
            assert name not in down.text and "does not exist" not in down.text
            assert "unreachable" in server.output()  # the detail is in the log, for the operator
    finally:
        cluster.drop_database(name)
