"""The chat app at its edges: provider errors, shutdown during a stream, and startup mistakes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

from llmtally.db import Database
from tests.support.server import ROOT, ChatClient, free_port, login_cookie, run_server


async def test_provider_error_is_a_friendly_message_and_a_failure_row(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    # A real LiteLLM provider pointed at a closed local port: the call fails without any network.
    env = {
        "OPENAI_API_KEY": "sk-test-not-a-key",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_BASE": "http://127.0.0.1:9/v1",
    }
    with run_server(db_url, tmp_path / "home", env=env) as server:
        client = ChatClient(server, login_cookie(server, "alice", "alice-password"))
        await client.connect()
        try:
            await client.sio.emit("chat_settings_change", {"model": "gpt-4o-mini"})
            await asyncio.sleep(0.3)
            mark, _ = await client.reply("Hello?", timeout=120)
            notes = [m["output"] for m in client.since(mark, "new_message") if m.get("name") == "llmtally"]
            assert notes and "gpt-4o-mini is unavailable right now" in notes[0], notes
            assert "Traceback" not in notes[0] and "sk-test" not in notes[0]
        finally:
            await client.close()
    [row] = db.fetch_all("select user_profile_id, model, status, error_type, tokens_used from request_logs")
    assert (row["user_profile_id"], row["model"], row["status"]) == ("password_alice", "gpt-4o-mini", "failure")
    assert row["error_type"] and row["tokens_used"] == 0


async def test_sigterm_during_a_stream_records_the_call_before_exit(db_url: str, db: Database, tmp_path: Path) -> None:
    with run_server(db_url, tmp_path / "home") as server:
        client = ChatClient(server, login_cookie(server, "alice", "alice-password"))
        await client.connect()
        mark = await client.send("Keep talking.")
        await client.wait_for(lambda: len(client.since(mark, "stream_token")) >= 3, "some tokens")
        server.process.terminate()
        code = await asyncio.to_thread(server.process.wait, 30)
        await client.close()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it stopped
        assert code in (0, -15), server.output()
    [row] = db.fetch_all("select status, completion_tokens from request_logs")
    assert row["status"] == "cancelled" and row["completion_tokens"] > 0


def _up(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "OAUTH_", "CHAINLIT_"))}
    environment.pop("DATABASE_URL", None)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "llmtally", "up", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_port_in_use_is_one_line(db_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _up("--port", str(port), env={"DATABASE_URL": db_url, "LLMTALLY_HOME": str(tmp_path)})
    _one_line(result, f"cannot listen on 127.0.0.1:{port}")


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = _up(
        "--port",
        str(free_port()),
        env={"DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x", "LLMTALLY_HOME": str(tmp_path)},
    )
    _one_line(result, "cannot reach PostgreSQL at 127.0.0.1:1")


def test_half_configured_oauth_is_one_line(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url, "LLMTALLY_HOME": str(tmp_path), "OAUTH_GITHUB_CLIENT_ID": "only-the-id"}
    _one_line(_up("--port", str(free_port()), env=env), "OAuth provider github is missing OAUTH_GITHUB_CLIENT_SECRET")
