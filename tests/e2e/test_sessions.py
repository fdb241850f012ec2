"""Login sessions the server ends, chat session ids the client cannot choose, chat records only their owner
can change: against the real server, its websocket and Chainlit's own routes.

One server for the module (users alice and bob); each test logs in afresh, so no test sees another's session.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import jwt

from llmtally.db import Database
from tests.support.cli import llmtally
from tests.support.server import ChatClient, Server, login_cookie, run_server


def _token(cookie: str) -> str:
    return cookie.split("=", 1)[1].split(";")[0]


def _secret(server: Server) -> str:
    return (server.log.parent / "app" / "auth-secret").read_text().strip()


def _works(server: Server, cookie: str) -> dict[str, int]:
    """What the cookie opens: our API and page, Chainlit's own thread list, and a bearer renewal."""
    with httpx.Client(base_url=server.url, timeout=10, follow_redirects=False) as client:
        return {
            "api": client.get("/api/v1/usage/me", headers={"Cookie": cookie}).status_code,
            "usage": client.get("/usage", headers={"Cookie": cookie}).status_code,
            "threads": client.post(
                "/project/threads",
                json={"pagination": {"first": 5}, "filter": {}},
                headers={"Cookie": cookie},
            ).status_code,
            "renew": client.post("/auth/jwt", headers={"Authorization": f"Bearer {_token(cookie)}"}).status_code,
            "polling": client.get(
                "/ws/socket.io/", params={"EIO": "4", "transport": "polling"}, headers={"Cookie": cookie}
            ).status_code,
        }


async def _socket_opens(server: Server, cookie: str) -> bool:
    client = ChatClient(server, cookie)
    try:
        await client.connect()
    except Exception:  # refused handshake (socketio.ConnectionError) or no chat settings
        return False
    finally:
        await client.close()
        if client.sio.eio.http is not None and not client.sio.eio.http.closed:
            await client.sio.eio.http.close()
    return True


async def test_logout_ends_the_session_everywhere(server: Server) -> None:
    cookie = login_cookie(server, "alice", "alice-password")
    assert _works(server, cookie) == {"api": 200, "usage": 200, "threads": 200, "renew": 200, "polling": 200}
    out = httpx.post(f"{server.url}/logout", headers={"Cookie": cookie, "Origin": server.url}, timeout=10)
    assert out.status_code == 200
    assert _works(server, cookie) == {"api": 401, "usage": 303, "threads": 401, "renew": 401, "polling": 401}
    assert not await _socket_opens(server, cookie)


async def test_an_administrators_revoke_closes_an_open_chat_on_its_next_event(
    server: Server, db: Database, db_url: str
) -> None:
    cookie = login_cookie(server, "alice", "alice-password")
    other = login_cookie(server, "bob", "bob-password")
    client = ChatClient(server, cookie)
    await client.connect()
    try:
        await client.reply("Before the revoke.")
        result = llmtally("users", "revoke-sessions", "password_alice", database_url=db_url)
        assert result.returncode == 0, result.stderr
        assert "ended 1 login session of password_alice" in result.stdout
        assert "API tokens of password_alice still work" in result.stdout
        await client.send("After the revoke.")
        await client.wait_for(lambda: not client.sio.connected, "the server to close the socket", timeout=10)
    finally:
        await client.close()
    await asyncio.sleep(0.5)
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 1  # the second message never ran
    assert _works(server, cookie)["api"] == 401
    assert _works(server, other)["api"] == 200  # another user's session is untouched


def test_an_expired_or_foreign_session_cannot_be_renewed(server: Server, db: Database) -> None:
    cookie = login_cookie(server, "alice", "alice-password")
    renewed = httpx.post(f"{server.url}/auth/jwt", headers={"Authorization": f"Bearer {_token(cookie)}"})
    assert renewed.status_code == 200
    claims = jwt.decode(renewed.cookies["access_token"], _secret(server), algorithms=["HS256"])
    db.execute(
        "update web_sessions set expires_at = now() - interval '1 second' where id = %s",
        (claims["metadata"]["session"],),
    )
    assert _works(server, f"access_token={renewed.cookies['access_token']}") == {
        "api": 401,
        "usage": 303,
        "threads": 401,
        "renew": 401,
        "polling": 401,
    }
    # A JWT signed with the secret but naming no session of this server (a 15-day cookie of before):
    now = dt.datetime.now(dt.UTC)
    forged = jwt.encode(
        {
            "identifier": "password_bob",
            "metadata": {"provider": "password"},
            "iat": now,
            "exp": now + dt.timedelta(days=15),
        },
        _secret(server),
        algorithm="HS256",
    )
    assert _works(server, f"access_token={forged}") == {
        "api": 401,
        "usage": 303,
        "threads": 401,
        "renew": 401,
        "polling": 401,
    }


def test_a_login_removed_from_llmtally_users_is_logged_out(server: Server, db_url: str) -> None:
    bob = login_cookie(server, "bob", "bob-password")
    alice = login_cookie(server, "alice", "alice-password")
    assert _works(server, bob)["api"] == 200
    home = server.log.parent  # the same auth secret, the same database: the app restarted without bob
    with run_server(
        db_url,
        home.parent / "without-bob",
        env={"LLMTALLY_USERS": "alice:alice-password", "CHAINLIT_AUTH_SECRET": _secret(server)},
    ) as again:
        assert _works(again, bob)["api"] == 401
        assert _works(again, alice)["api"] == 200
        assert "password_bob is no longer a configured login: 1 session ended" in again.output()
    assert _works(server, bob)["api"] == 401  # ended in the database: every server refuses it


async def test_the_chat_records_a_session_id_of_its_own(server: Server, db: Database) -> None:
    # alice's earlier chat (before a restart, say) linked this id; bob's client now chooses it as its sessionId
    db.fetch_all("select public.llmtally_link_session('chosen-by-the-client', 'password_alice')")
    bob = ChatClient(server, login_cookie(server, "bob", "bob-password"), session_id="chosen-by-the-client")
    await bob.connect()
    try:
        await bob.reply("Whose session is this?")
    finally:
        await bob.close()
    [row] = db.fetch_all("select user_profile_id, session_id from request_logs")
    assert row["user_profile_id"] == "password_bob" and row["session_id"].startswith("chat_")
    assert db.fetch_all("select session_id, user_id from sessions order by user_id") == [
        {"session_id": "chosen-by-the-client", "user_id": "password_alice"},
        {"session_id": row["session_id"], "user_id": "password_bob"},
    ]


def _feedback(server: Server, cookie: str, **feedback: object) -> httpx.Response:
    return httpx.put(
        f"{server.url}/feedback",
        json={"feedback": feedback, "sessionId": "none"},
        headers={"Cookie": cookie, "Origin": server.url},
        timeout=10,
    )


async def test_another_users_messages_and_feedback_cannot_be_changed(server: Server, db: Database) -> None:
    alice_cookie = login_cookie(server, "alice", "alice-password")
    bob_cookie = login_cookie(server, "bob", "bob-password")
    alice = ChatClient(server, alice_cookie)
    await alice.connect()
    try:
        await alice.reply("Alice's own words.")
    finally:
        await alice.close()
    [step] = db.fetch_all("select id, thread_id from chat.steps where type = 'user_message'")
    given = _feedback(server, alice_cookie, forId=step["id"], value=1, comment="alice")
    assert given.status_code == 200, given.text
    feedback_id = given.json()["feedbackId"]

    bob = ChatClient(server, bob_cookie)
    await bob.connect()
    try:
        mark = len(bob.events)
        message = {
            "id": step["id"],
            "threadId": "",
            "name": "bob",
            "type": "user_message",
            "output": "Bob's words.",
            "createdAt": dt.datetime.now(dt.UTC).isoformat(),
        }
        await bob.sio.emit("client_message", {"message": message, "fileReferences": None})
        await bob.wait_for(lambda: bob.finished(mark), "bob's reply")
    finally:
        await bob.close()
    [bob_step] = db.fetch_all(
        "select s.id from chat.steps s join chat.threads t on t.id = s.thread_id"
        " where t.user_identifier = 'password_bob' and s.type = 'assistant_message'"
    )
    overwrite = _feedback(server, bob_cookie, id=feedback_id, forId=bob_step["id"], value=0, comment="bob")
    on_alice = _feedback(server, bob_cookie, forId=step["id"], value=0, comment="bob")
    deleted = httpx.request(
        "DELETE",
        f"{server.url}/feedback",
        json={"feedbackId": feedback_id},
        headers={"Cookie": bob_cookie, "Origin": server.url},
        timeout=10,
    )
    nowhere = _feedback(server, bob_cookie, forId="no-such-step", value=1)
    assert overwrite.status_code == on_alice.status_code == nowhere.status_code == 500
    assert deleted.status_code == 200  # Chainlit's answer; nothing was deleted
    for refused in (overwrite, on_alice, nowhere):
        assert refused.json() == {"detail": "no such message"}, refused.text  # no constraint, no SQL
    assert db.fetch_all("select output from chat.steps where id = %s", (step["id"],)) == [
        {"output": "Alice's own words."}
    ]
    assert db.fetch_all("select id, step_id, value, comment from chat.feedbacks") == [
        {"id": feedback_id, "step_id": step["id"], "value": 1.0, "comment": "alice"}
    ]
