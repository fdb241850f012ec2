#!/usr/bin/env python3
"""Measure what one proxied call's request_logs row weighs, with llmtally's plug-in and with LiteLLM's
plain callback (the ledger's SDK callback registered in the proxy), both with LLMTALLY_CONTENT=none.

    .venv/bin/python scripts/proxy_row_size.py

Runs the real proxy from .venv-proxy (built by dev.py) against the local test upstream, on a throwaway
embedded database.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
from tests.support.proxy import run_proxy, write_config  # noqa: E402
from tests.support.upstream import Upstream  # noqa: E402

from llmtally.db import Database, EmbeddedServer  # noqa: E402
from llmtally.db.migrations import migrate  # noqa: E402

PLAIN_CALLBACK = """from llmtally import Ledger
import litellm
handler = Ledger().start_sync()._callback
litellm.callbacks.remove(handler)  # the proxy registers it from its config
"""


def measure(callback: str, where: Path, upstream: Upstream, url: str) -> tuple[int, int, int]:
    params = {"model": "openai/gpt-4o-mini", "api_base": upstream.api_base("ok"), "api_key": "sk-upstream"}
    config = write_config(
        where,
        [{"model_name": "gpt-4o-mini", "litellm_params": params}],
        {"sk-alice": {"user_id": "alice", "team_id": "team-a", "key_alias": "alice-laptop"}},
        litellm_settings={"callbacks": [callback]},
    )
    (where / "plain_callback.py").write_text(PLAIN_CALLBACK)
    with run_proxy(config, url, where / "home", env={"LLMTALLY_CONTENT": "none"}) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-alice", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], user="u1")
    with Database(url) as db:
        row = db.fetch_one(
            "select pg_column_size(r.*) as row_bytes, pg_column_size(r.metadata) as metadata_bytes,"
            " octet_length(r.metadata::text) as metadata_text_bytes"
            " from request_logs r order by id desc limit 1"
        )
        db.execute("truncate request_logs, request_attempts cascade")
    assert row is not None, "no row was written"
    return row["row_bytes"], row["metadata_bytes"], row["metadata_text_bytes"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, Upstream() as upstream:
        server = EmbeddedServer(Path(tmp) / "db")
        url = server.start()
        try:
            with Database(url) as db:
                migrate(db)
            plain = measure("plain_callback.handler", Path(tmp) / "plain", upstream, url)
            plugin = measure("llmtally.proxy.handler", Path(tmp) / "plugin", upstream, url)
        finally:
            server.stop()
    for name, (row, metadata, text) in (("the SDK callback", plain), ("llmtally.proxy.handler", plugin)):
        print(f"{name:>22}: row {row} bytes stored, metadata {metadata} bytes stored ({text} bytes as JSON text)")


if __name__ == "__main__":
    main()
