"""Run the real chat server (``llmtally up``) in a subprocess, and talk to it like the web client."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import socketio

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def run_server(
    database_url: str, home: Path, *, env: dict[str, str] | None = None, port: int | None = None
) -> Iterator[Server]:
    port = port or free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "OAUTH_", "CHAINLIT_"))}
    environment.pop("CI", None)  # Chainlit's CI mode is not for a real server
    environment.pop("DATABASE_URL", None)
    environment.update(
        {
            "DATABASE_URL": database_url,
            "LLMTALLY_HOME": str(home),
            "LLMTALLY_USERS": "alice:alice-password,bob:bob-password",
            "LLMTALLY_FLUSH_INTERVAL_MS": "20",
            "COLUMNS": "200",
        }
    )
    environment.update(env or {})
    log = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmtally", "up", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        wait_until_answering(process, f"{server.url}/healthz", server.output, "the server", timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_answering(
    process: subprocess.Popen[Any], url: str, output: Callable[[], str], what: str, *, timeout: float
) -> None:
    """Poll ``url`` until it answers 200; fail with the process's output if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited ({process.returncode}):\n{output()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not answer within {timeout:.0f} s:\n{output()}")
        time.sleep(0.2)


def login_cookie(server: Server, username: str, password: str) -> str:
    response = httpx.post(f"{server.url}/login", data={"username": username, "password": password}, timeout=10)
    assert response.status_code == 200, response.text
    cookies = [f"{name}={value}" for name, value in response.cookies.items()]
    assert cookies, "login set no cookie"
    return "; ".join(cookies)


@dataclass
class ChatClient:
    """A Chainlit web client over the real websocket."""

    server: Server
    cookie: str
    thread_id: str | None = None
    events: list[tuple[str, Any]] = field(default_factory=list)
    sio: socketio.AsyncClient = field(default_factory=lambda: socketio.AsyncClient(reconnection=False))
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    async def connect(self) -> None:
        @self.sio.on("*")
        async def _any(event: str, data: Any = None) -> None:
            self.events.append((event, data))

        await self.sio.connect(
            self.server.url,
            socketio_path="/ws/socket.io",
            transports=["websocket"],
            headers={"Cookie": self.cookie},
            auth={
                "clientType": "webapp",
                "sessionId": self.session_id,
                "threadId": self.thread_id,
                "userEnv": "{}",
                "chatProfile": None,
            },
            wait_timeout=10,
        )
        await self.sio.emit("connection_successful")
        await self.wait_for(lambda: any(e == "chat_settings" for e, _ in self.events), "chat settings")

    async def wait_for(self, condition: Any, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                names = [e for e, _ in self.events][-30:]
                raise AssertionError(f"timed out waiting for {what}; last events: {names}")
            await asyncio.sleep(0.02)

    async def send(self, text: str) -> int:
        """Send a message; return the index of the first event after it."""
        mark = len(self.events)
        step = {
            "id": str(uuid.uuid4()),
            "threadId": "",
            "name": "alice",
            "type": "user_message",
            "output": text,
            "createdAt": dt.datetime.now(dt.UTC).isoformat(),
        }
        await self.sio.emit("client_message", {"message": step, "fileReferences": None})
        return mark

    def since(self, mark: int, name: str) -> list[Any]:
        return [data for event, data in self.events[mark:] if event == name]

    def streamed(self, mark: int) -> str:
        """The streamed reply: the first token arrives with stream_start, the rest as stream_token."""
        text = "".join(str(d.get("output") or "") for d in self.since(mark, "stream_start"))
        return text + "".join(str(d.get("token", "")) for d in self.since(mark, "stream_token"))

    def finished(self, mark: int) -> bool:
        """The message's task has ended: Chainlit closes its ``on_message`` run step."""
        return any(
            event == "update_message" and isinstance(data, dict) and data.get("name") == "on_message"
            for event, data in self.events[mark:]
        )

    async def reply(self, text: str, timeout: float = 60) -> tuple[int, str]:
        mark = await self.send(text)
        await self.wait_for(lambda: self.finished(mark), "the end of the reply", timeout)
        return mark, self.streamed(mark)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
