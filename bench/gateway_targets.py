"""The gateway benchmark's processes: the upstream, the LiteLLM Proxy, ``llmtally gateway``, the load generator.

Each runs in its own process, so none takes CPU from another's event loop (the machine's cores are
shared by all of them, and that is said with the figures):

- the upstream: ``bench/gateway_upstream.py`` (asyncio, fixed reply, usage chunk when asked);
- the LiteLLM Proxy: ``litellm --config`` from ``.venv-proxy`` (built by ``dev.py`` if missing), one
  model pointed at the upstream, a master key, no database, no callback: LiteLLM's own fastest setup;
- ``llmtally gateway --config`` on the benchmark's database, the same model at the upstream, with a key
  made by ``llmtally tokens create USER --new-user`` and a monthly budget far above what the run spends,
  so every call is reserved, recorded and settled, as in production;
- the load generator: ``bench/gateway_load.py`` (httpx), one job a line on stdin.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
from bench.common import ROOT
from tests.support.server import free_port, wait_until_answering

MODEL = "gpt-4o-mini"
PROXY_KEY = "sk-bench-master"
UPSTREAM_KEY = "sk-upstream"
USER = "svc_gwbench"
BUDGET_USD = "1000000"


@dataclass
class Process:
    name: str
    process: subprocess.Popen[Any]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (the gateway drains its ledger on it), then SIGKILL if it does not end."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "VIRTUAL_ENV", "OAUTH_"))}
    for name in ("CI", "DATABASE_URL", "PYTHONPATH"):
        env.pop(name, None)
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_PROXY": "127.0.0.1,localhost", "COLUMNS": "200"}
    return env | extra


def _spawn(
    name: str, command: Sequence[str], where: Path, env: dict[str, str], cwd: Path | None = None, **popen: Any
) -> Process:
    """``command`` with its output in ``where/NAME.log``, run in ``cwd`` (default ``where``)."""
    log = where / f"{name}.log"
    with log.open("wb") as out:
        stdout = popen.pop("stdout", out)
        process = subprocess.Popen(list(command), cwd=cwd or where, env=env, stdout=stdout, stderr=out, **popen)
    return Process(name, process, log)


def start_upstream(where: Path, chunk_delay_ms: float) -> tuple[Process, str]:
    """The upstream and its root URL (``http://127.0.0.1:PORT``)."""
    script = ROOT / "bench" / "gateway_upstream.py"
    command = [sys.executable, str(script), "--chunk-delay-ms", str(chunk_delay_ms)]
    upstream = _spawn("upstream", command, where, _environment({}), stdout=subprocess.PIPE, text=True)
    assert upstream.process.stdout is not None
    line = upstream.process.stdout.readline()
    if not line.startswith("listening "):
        upstream.stop()
        raise RuntimeError(f"the benchmark upstream did not start: {line!r}\n{upstream.output()}")
    return upstream, f"http://127.0.0.1:{int(line.split()[1])}"


def _model_list(api_base: str) -> list[dict[str, Any]]:
    params = {"model": f"openai/{MODEL}", "api_base": api_base, "api_key": UPSTREAM_KEY}
    return [{"model_name": MODEL, "litellm_params": params}]


def start_proxy(where: Path, upstream: str) -> tuple[Process, str]:
    """``litellm --config`` with no database and no callback; its URL (wait with :func:`wait_ready`)."""
    from tests.support.proxy import proxy_bin

    binaries = proxy_bin()
    config = {"model_list": _model_list(f"{upstream}/proxy/v1"), "general_settings": {"master_key": PROXY_KEY}}
    path = where / "proxy.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    command = [str(binaries / "litellm"), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    return _spawn("proxy", command, where, _environment({})), f"http://127.0.0.1:{port}"


def gateway_command(config: Path, port: int, workers: int = 1) -> list[str]:
    command = [sys.executable, "-m", "llmtally", "gateway", "--port", str(port), "--config", str(config)]
    return [*command, "--workers", str(workers)] if workers > 1 else command


def gateway_env(database_url: str, home: Path, *, direct: bool = True) -> dict[str, str]:
    return _environment(
        {"DATABASE_URL": database_url, "LLMTALLY_HOME": str(home), "LLMTALLY_GATEWAY_DIRECT": str(direct).lower()}
    )


def write_gateway_config(where: Path, upstream: str, caller: str = "gateway") -> Path:
    """The gateway's config, its model at ``{upstream}/{caller}/v1`` (the upstream counts calls by caller)."""
    path = where / f"{caller}.yaml"
    path.write_text(json.dumps({"model_list": _model_list(f"{upstream}/{caller}/v1")}, indent=2))
    return path


def start_gateway(
    where: Path, config: Path, database_url: str, *, direct: bool = True, workers: int = 1
) -> tuple[Process, str]:
    """``llmtally gateway`` on a free port; its URL (wait with :func:`wait_ready`). ``direct=False``: every
    call through LiteLLM's Router (``LLMTALLY_GATEWAY_DIRECT=false``); ``workers``: its processes."""
    port = free_port()
    env = gateway_env(database_url, where / "home", direct=direct)
    name = "gateway" if direct else "gateway-routed"
    command = gateway_command(config, port, workers)
    return _spawn(name, command, where, env, cwd=ROOT), f"http://127.0.0.1:{port}"


def wait_ready(target: Process, url: str, timeout: float = 180) -> None:
    wait_until_answering(target.process, url, target.output, target.name, timeout=timeout)


def llmtally_cli(database_url: str, home: Path, *args: str) -> str:
    """One ``llmtally`` command (a real process, as an operator types it); its output."""
    done = subprocess.run(
        [sys.executable, "-m", "llmtally", *args],
        cwd=ROOT,
        env=gateway_env(database_url, home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"llmtally {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout.strip()


def make_key(database_url: str, home: Path) -> str:
    """A key of a new user, with a hard budget set high enough never to refuse (the reservation runs)."""
    token = llmtally_cli(database_url, home, "tokens", "create", USER, "--new-user", "--name", "gateway benchmark")
    llmtally_cli(database_url, home, "budgets", "set", USER, "--period", "monthly", "--usd", BUDGET_USD)
    return token.splitlines()[-1].strip()


def upstream_stats(upstream: str) -> dict[str, int]:
    answer = httpx.get(f"{upstream}/stats", timeout=10, trust_env=False).json()
    return {str(k): int(v) for k, v in answer["completions"].items()}


class LoadGenerator:
    """``bench/gateway_load.py`` in its own process; :meth:`run` sends it one job and waits for the answer."""

    def __init__(self, where: Path) -> None:
        script = ROOT / "bench" / "gateway_load.py"
        self._log = (where / "load.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, str(script)],
            cwd=ROOT,
            env=_environment({}),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._stdin: IO[str] = self._process.stdin  # type: ignore[assignment]
        self._stdout: IO[str] = self._process.stdout  # type: ignore[assignment]
        if self._stdout.readline().strip() != "ready":
            raise RuntimeError(f"the load generator did not start (see {where / 'load.log'})")

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        self._stdin.write(json.dumps(job) + "\n")
        self._stdin.flush()
        line = self._stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self._process.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()


@contextlib.contextmanager
def load_generator(where: Path) -> Iterator[LoadGenerator]:
    generator = LoadGenerator(where)
    try:
        yield generator
    finally:
        generator.close()


def wait_for(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
