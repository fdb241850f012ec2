"""Part 4: start-up of ``llmtally up`` and a load run of the chat app over its real websocket.

Start-up: seconds from spawning ``llmtally up`` to the first healthy ``/healthz``, cold (a new
LLMTALLY_HOME: the embedded PostgreSQL is initialised and migrated) and warm (the same home again),
alternating, medians over repetitions.

Load: N users log in with a password, each opens the Chainlit websocket as the web client does and
sends messages one after another to the offline demo model, all users at once. Reported: replies per
second, reply latency p50/p95 (send → the end of the reply), and the same latency for a single user
measured in the same run (the demo model streams each reply over ~2 s on purpose, so the ratio to one
user is the server's cost under load). Afterwards every reply must be in request_logs, once, and the
counters must equal the ledger.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from bench.common import ROOT, Report, Server, check_invariants, median, percentile
from tests.support.server import ChatClient, free_port
from tests.support.server import Server as AppServer


@dataclass
class AppConfig:
    startup_reps: int = 3
    users: tuple[int, ...] = (50, 200)
    messages_per_user: int = 3

    @classmethod
    def smoke(cls) -> AppConfig:
        return cls(startup_reps=1, users=(3,), messages_per_user=1)


def _environment(home: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "OAUTH_", "CHAINLIT_"))}
    for name in ("CI", "DATABASE_URL"):
        env.pop(name, None)
    env.update({"LLMTALLY_HOME": str(home), "COLUMNS": "200"})
    env.update(extra)
    return env


def spawn(home: Path, port: int, extra: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    home.mkdir(parents=True, exist_ok=True)
    log = home / f"server-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmtally", "up", "--port", str(port)],
            cwd=ROOT,
            env=_environment(home, extra),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return process, log


def wait_healthy(process: subprocess.Popen[str], url: str, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llmtally up exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{url}/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llmtally up did not become healthy in {timeout:.0f} s")
            time.sleep(0.02)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def time_startup(home: Path) -> float:
    port = free_port()
    started = time.perf_counter()
    process, log = spawn(home, port, {})
    try:
        wait_healthy(process, f"http://127.0.0.1:{port}", log)
        return time.perf_counter() - started
    finally:
        stop(process)


def measure_startup(report: Report, cfg: AppConfig) -> dict[str, Any]:
    report.line("start-up: `llmtally up` to a healthy /healthz on the embedded database")
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(cfg.startup_reps):
        home = Path(tempfile.mkdtemp(prefix="llmtally-bench-up-"))
        try:
            cold.append(time_startup(home))  # initdb, start, migrate
            warm.append(time_startup(home))  # the same home: the cluster exists and is current
        finally:
            shutil.rmtree(home, ignore_errors=True)
    rows = [
        ("cold (new LLMTALLY_HOME)", f"{median(cold):.2f}", f"{min(cold):.2f}", f"{max(cold):.2f}"),
        ("warm (initialised)", f"{median(warm):.2f}", f"{min(warm):.2f}", f"{max(warm):.2f}"),
    ]
    report.table(["start-up", "median s", "min s", "max s"], rows)
    return {"cold_s": cold, "warm_s": warm, "cold_median_s": median(cold), "warm_median_s": median(warm)}


async def _login(client: httpx.AsyncClient, url: str, user: str) -> str:
    response = await client.post(f"{url}/login", data={"username": user, "password": f"{user}-pw"})
    response.raise_for_status()
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


@dataclass
class _Gate:
    """Starts the clock once every user is logged in and connected."""

    expected: int
    ready: int = 0

    def __post_init__(self) -> None:
        self.all_ready = asyncio.Event()
        self.go = asyncio.Event()

    def arrive(self) -> None:
        self.ready += 1
        if self.ready == self.expected:
            self.all_ready.set()


async def _user_session(server: AppServer, user: str, messages: int, gate: _Gate) -> list[float]:
    async with httpx.AsyncClient(timeout=60) as http:
        cookie = await _login(http, server.url, user)
    chat = ChatClient(server, cookie)
    await chat.connect()
    latencies: list[float] = []
    try:
        gate.arrive()
        await gate.go.wait()
        for i in range(messages):
            sent = time.perf_counter()
            await chat.reply(f"load test message {i} from {user}", timeout=300)
            latencies.append(time.perf_counter() - sent)
    finally:
        await chat.close()
    return latencies


async def _load(server: AppServer, users: list[str], messages: int) -> tuple[list[float], float]:
    gate = _Gate(len(users))
    tasks = [asyncio.create_task(_user_session(server, u, messages, gate)) for u in users]
    ready = asyncio.create_task(gate.all_ready.wait())
    await asyncio.wait([ready, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():  # a session failed before the start: report its error
        ready.cancel()
        await asyncio.gather(*tasks)
    began = time.perf_counter()
    gate.go.set()
    results = await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    return [x for r in results for x in r], elapsed


def _rows_for(url: str, users: list[str]) -> tuple[int, int]:
    ids = [f"password_{u}" for u in users]
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*), count(distinct litellm_call_id) from public.request_logs"
            " where user_profile_id = any(%s) and status = 'success'",
            (ids,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def measure_load(srv: Server, report: Report, cfg: AppConfig) -> dict[str, Any]:
    results: dict[str, Any] = {}
    most = max(cfg.users)
    names = [f"load{i:04d}" for i in range(most)]
    url = srv.create_database("app")
    home = Path(tempfile.mkdtemp(prefix="llmtally-bench-app-"))
    port = free_port()
    extra = {"DATABASE_URL": url, "LLMTALLY_USERS": ",".join(f"{n}:{n}-pw" for n in names)}
    process, log = spawn(home, port, extra)
    server = AppServer(f"http://127.0.0.1:{port}", process, log)  # type: ignore[arg-type]
    rows: list[tuple[Any, ...]] = []
    expected = 0
    try:
        wait_healthy(process, server.url, log)
        single, _ = asyncio.run(_load(server, ["load0000"], cfg.messages_per_user))
        expected += len(single)
        base_p50 = median(single)
        rows.append(("1 (baseline)", len(single), "-", f"{base_p50:.2f}", f"{percentile(single, 95):.2f}", "1.00×"))
        results["single_user_p50_s"] = base_p50
        for n in cfg.users:
            latencies, elapsed = asyncio.run(_load(server, names[:n], cfg.messages_per_user))
            expected += len(latencies)
            p50, p95 = median(latencies), percentile(latencies, 95)
            rate = len(latencies) / elapsed
            rows.append((n, len(latencies), f"{rate:.1f}", f"{p50:.2f}", f"{p95:.2f}", f"{p50 / base_p50:.2f}×"))
            results[f"users_{n}"] = {"replies": len(latencies), "replies_per_s": rate, "p50_s": p50, "p95_s": p95}
        deadline = time.monotonic() + 60
        while True:  # the ledger writes within its flush interval; give it time under load
            recorded, distinct = _rows_for(url, names)
            if recorded >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        stop(process)
        shutil.rmtree(home, ignore_errors=True)
    report.table(["users", "replies", "replies/s", "p50 s", "p95 s", "p50 vs 1 user"], rows)
    report.line(
        f"replies sent: {expected:,}; rows in request_logs for these users: {recorded:,} ({distinct:,} distinct)"
    )
    if recorded != expected or distinct != recorded:
        report.failed_checks.append("every chat reply recorded once")
        report.line("CHECK FAILED: every chat reply recorded once")
    report.check("chat load invariants", check_invariants(url))
    results.update({"expected": expected, "recorded": recorded})
    srv.drop_database(url)
    return results


def run(srv: Server, report: Report, cfg: AppConfig) -> dict[str, Any]:
    report.section("4. Start-up and end to end")
    results = {"startup": measure_startup(report, cfg)}
    report.line(
        f"chat load: N users at once over the websocket, {cfg.messages_per_user} message(s) each, demo model"
        " (each reply streams over ~2 s by design)"
    )
    results["load"] = measure_load(srv, report, cfg)
    return results
