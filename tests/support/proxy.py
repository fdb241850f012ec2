"""The real LiteLLM Proxy (``litellm --config``) in a subprocess, from .venv-proxy, with llmtally's plug-in.

The proxy cannot run in the test environment (its mcp>=2.3 against Chainlit's mcp<2): ``dev.py`` builds
.venv-proxy from uv.lock once per lock (``sync_proxy``), and this module asks it to, so a test run from a
fresh clone builds it too. Keys are checked by a small ``custom_auth`` function written next to the
config (LiteLLM's own virtual keys need its Prisma database): each key maps to the identity LiteLLM then
puts in the logging payload, exactly as for its own keys.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import ROOT, free_port, wait_until_answering

MASTER_KEY = "sk-proxy-master"

AUTH_MODULE = '''"""Test keys: each maps to the identity a LiteLLM virtual key carries."""
import json
from pathlib import Path

from fastapi import HTTPException
from litellm.proxy._types import UserAPIKeyAuth

KEYS = json.loads((Path(__file__).parent / "keys.json").read_text())


async def user_api_key_auth(request, api_key):
    identity = KEYS.get(api_key)
    if identity is None:
        raise HTTPException(status_code=401, detail="invalid proxy key")
    return UserAPIKeyAuth(api_key=api_key, **identity)
'''


def proxy_bin() -> Path:
    sys.path.insert(0, str(ROOT))
    try:
        import dev
    finally:
        sys.path.remove(str(ROOT))
    return dev.sync_proxy(dev.ensure_uv())


@dataclass
class Proxy:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as a process manager stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"the proxy did not stop on SIGTERM:\n{self.output()[-3000:]}") from None
        return self.process.returncode


def write_config(
    where: Path,
    model_list: list[dict[str, Any]],
    keys: Mapping[str, Mapping[str, Any]],
    *,
    router_settings: Mapping[str, Any] | None = None,
    litellm_settings: Mapping[str, Any] | None = None,
) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "proxy_test_auth.py").write_text(AUTH_MODULE)
    (where / "keys.json").write_text(json.dumps(dict(keys)))
    config = {
        "model_list": model_list,
        "general_settings": {"master_key": MASTER_KEY, "custom_auth": "proxy_test_auth.user_api_key_auth"},
        "litellm_settings": {"callbacks": ["llmtally.proxy.handler"], **(litellm_settings or {})},
    }
    if router_settings:
        config["router_settings"] = dict(router_settings)
    path = where / "config.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


@contextmanager
def run_proxy(config: Path, database_url: str, home: Path, *, env: Mapping[str, str] | None = None) -> Iterator[Proxy]:
    """The proxy on a free port, ready (``/health/liveliness``); stopped with SIGTERM after the block."""
    binaries = proxy_bin()
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "VIRTUAL_ENV"))}
    environment.pop("DATABASE_URL", None)  # the proxy would start its Prisma database on it
    environment.pop("PYTHONPATH", None)
    environment |= {
        "LLMTALLY_DATABASE_URL": database_url,
        "LLMTALLY_HOME": str(home),
        "LLMTALLY_FLUSH_INTERVAL_MS": "20",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "PYTHONPATH": str(config.parent),
        "NO_PROXY": "127.0.0.1,localhost",
        **(env or {}),
    }
    log = config.parent / f"proxy-{port}.log"
    command = [str(binaries / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=config.parent, env=environment, stdout=out, stderr=subprocess.STDOUT)
    proxy = Proxy(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_answering(
            process, f"{proxy.url}/health/liveliness", lambda: proxy.output()[-5000:], "the proxy", timeout=120
        )
        yield proxy
    finally:
        proxy.stop()
