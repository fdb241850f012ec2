"""The gateway (``llmtally gateway``'s app) served by uvicorn in a thread, over a real database and upstream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from llmtally.app.gateway.server import GatewayRuntime, build_gateway_app
from llmtally.db import Database
from llmtally.integrations.litellm.router import load_config
from llmtally.settings import Settings
from tests.support.server import free_port


@dataclass
class RunningGateway:
    url: str
    runtime: GatewayRuntime

    @property
    def db(self) -> Database:
        return self.runtime.db

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def wait_for_rows(self, user_id: str, count: int, timeout: float = 15.0, **where: Any) -> list[dict[str, Any]]:
        """The user's request_logs rows once there are ``count`` of them (matching ``where``), oldest first."""
        conditions = "".join(f" and {name} = %({name})s" for name in where)
        deadline = time.monotonic() + timeout
        while True:
            rows = self.db.fetch_all(
                f"select * from request_logs where user_profile_id = %(user)s{conditions} order by created_at",
                {"user": user_id, **where},
            )
            if len(rows) >= count or time.monotonic() > deadline:
                assert len(rows) == count, f"{user_id}: {len(rows)} rows, expected {count}: {rows}"
                return rows
            self.runtime.ledger.flush_sync(5)
            time.sleep(0.05)

    def reservations(self, user_id: str) -> int:
        row = self.db.fetch_one("select count(*) as n from budget_reservations where user_id = %s", (user_id,))
        return int(row["n"])


@contextmanager
def serve_gateway(
    database_url: str, home: Path, config_file: Path | None, *, direct: bool = True
) -> Iterator[RunningGateway]:
    """The gateway on a port of its own; ``direct=False`` sends every call through LiteLLM's Router."""
    settings = Settings(home=home, flush_interval_ms=20, gateway_direct=direct).model_copy(
        update={"database_url": database_url}
    )
    runtime = GatewayRuntime.start(settings, load_config(config_file))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app = build_gateway_app(runtime, url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.02)
    try:
        yield RunningGateway(url, runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
