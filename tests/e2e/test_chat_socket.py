"""The chat app end to end over Chainlit's real websocket: login, streamed replies, the ledger rows."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import httpx
import pytest
import socketio

from llmtally.db import Database
from tests.support.invariants import assert_counters_match_ledger
from tests.support.server import ChatClient, Server, login_cookie, run_server


async def connected(server: Server, user: str, thread_id: str | None = None) -> ChatClient:
    client = ChatClient(server, login_cookie(server, user, f"{user}-password"), thread_id=thread_id)
    await client.connect()
    return client


async def test_password_chat_is_streamed_and_recorded_for_the_user(server: Server, db: Database) -> None:
    client = await connected(server, "alice")
    try:
        mark, streamed = await client.reply("Hello, what do you record?")
        assert "offline demo model" in streamed and len(client.since(mark, "stream_token")) > 10
        _, second = await client.reply("And the second time?")
        assert "1 earlier turn" in second, "the model sees the thread's earlier messages"
    finally:
        await client.close()
    rows = db.fetch_all("select * from request_logs order by id")
    assert [(r["user_profile_id"], r["model"], r["provider"], r["status"], r["stream"]) for r in rows] == [
        ("password_alice", "demo", "llmtally", "success", True)
    ] * 2
    assert all(r["completion_tokens"] > 50 and r["total_cost"] > 0 for r in rows)
    assert rows[0]["cost_status"] == "priced"
    assert rows[0]["metadata"]["thread_id"] and rows[0]["session_id"]
    profile = db.fetch_one(
        "select request_count, provider, last_seen_at from user_profiles where user_id = 'password_alice'"
    )
    assert profile["request_count"] == 2 and profile["provider"] == "password" and profile["last_seen_at"]
    assert db.fetch_one("select user_id from sessions")["user_id"] == "password_alice"
    assert_counters_match_ledger(db)


async def test_stop_records_a_cancelled_call_with_tokens_so_far(server: Server, db: Database) -> None:
    client = await connected(server, "alice")
    try:
        mark = await client.send("Please tell me everything.")
        await client.wait_for(lambda: len(client.since(mark, "stream_token")) >= 5, "some tokens")
        await client.sio.emit("stop")
        await client.wait_for(lambda: client.finished(mark), "the stopped task")
        await asyncio.sleep(0.5)
    finally:
        await client.close()
    [row] = db.fetch_all("select * from request_logs")
    assert (row["status"], row["user_profile_id"], row["model"]) == ("cancelled", "password_alice", "demo")
    assert 0 < row["completion_tokens"] < 139
    assert row["total_cost"] > 0


async def test_a_closed_connection_mid_stream_is_recorded_as_cancelled(server: Server, db: Database) -> None:
    client = await connected(server, "bob")
    mark = await client.send("A long answer, please.")
    await client.wait_for(lambda: len(client.since(mark, "stream_token")) >= 5, "some tokens")
    await client.sio.disconnect()
    for _ in range(100):
        rows = db.fetch_all("select * from request_logs")
        if rows:
            break
        await asyncio.sleep(0.1)
    [row] = rows
    assert (row["status"], row["user_profile_id"]) == ("cancelled", "password_bob")
    assert row["completion_tokens"] > 0


async def test_usage_command_and_panel_show_this_months_usage(server: Server) -> None:
    client = await connected(server, "alice")
    try:
        await client.reply("Count this one.")
        mark, _ = await client.reply("/usage")
        messages = [m for m in client.since(mark, "new_message") if m.get("name") == "llmtally"]
        assert messages and "**1 request**" in messages[-1]["output"] and "demo" in messages[-1]["output"]
        panels = [e for e, _ in client.events if e == "set_sidebar_elements"]
        assert len(panels) >= 2, "the panel is refreshed after each reply"
    finally:
        await client.close()


async def test_threads_survive_a_restart_resume_with_history_and_stay_private(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    with run_server(db_url, tmp_path / "home") as first_run:
        alice = await connected(first_run, "alice")
        try:
            await alice.reply("Remember this thread.")
        finally:
            await alice.close()
    [thread] = db.fetch_all("select id, user_identifier from chat.threads")
    assert thread["user_identifier"] == "password_alice"
    steps = db.fetch_all(
        "select type, output from chat.steps where thread_id = %s order by start_time", (thread["id"],)
    )
    assert [s["type"] for s in steps if s["type"].endswith("message")][:2] == ["user_message", "assistant_message"]

    with run_server(db_url, tmp_path / "home") as server:  # a new process: nothing in memory
        threads = _threads(server, "alice")
        assert [t["id"] for t in threads] == [thread["id"]]
        assert _threads(server, "bob") == []
        resumed = await connected(server, "alice", thread_id=thread["id"])
        try:
            _, text = await resumed.reply("Do you see my earlier message?")
            assert "1 earlier turn" in text
        finally:
            await resumed.close()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connected(server, "bob", thread_id=thread["id"])


def _threads(server: Server, user: str) -> list[dict[str, object]]:
    response = httpx.post(
        f"{server.url}/project/threads",
        json={"pagination": {"first": 20}, "filter": {}},
        headers={"Cookie": login_cookie(server, user, f"{user}-password")},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_session_cookie_carries_no_secret_and_cors_allows_only_the_app(server: Server) -> None:
    cookie = login_cookie(server, "alice", "alice-password")
    token = cookie.split("=", 1)[1].split(";")[0]
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=" * (-len(token.split(".")[1]) % 4)))
    assert payload["identifier"] == "password_alice"
    # the server-side session's id names its row in web_sessions; the signature is what authenticates
    assert payload["metadata"] == {"provider": "password", "session": payload["metadata"]["session"]}
    assert payload["exp"] - payload["iat"] == 12 * 3600  # LLMTALLY_SESSION_HOURS' default
    assert "alice-password" not in json.dumps(payload)
    evil = httpx.get(f"{server.url}/auth/config", headers={"Origin": "http://evil.example"}, timeout=10)
    assert "access-control-allow-origin" not in evil.headers
    own = httpx.get(f"{server.url}/auth/config", headers={"Origin": server.url}, timeout=10)
    assert own.headers.get("access-control-allow-origin") == server.url
