"""The chat app under budgets and rate limits, over Chainlit's real websocket."""

from __future__ import annotations

import time
from decimal import Decimal

import openai
import pytest

from llmtally import budgets as api
from llmtally.api_tokens import create_token
from llmtally.db import Database
from tests.support.invariants import assert_counters_match_ledger
from tests.support.server import ChatClient, Server, login_cookie


async def connected(server: Server, user: str) -> ChatClient:
    client = ChatClient(server, login_cookie(server, user, f"{user}-password"))
    await client.connect()
    return client


def said(client: ChatClient, mark: int) -> list[str]:
    return [str(m.get("output")) for m in client.since(mark, "new_message") if m.get("name") == "llmtally"]


async def test_a_tiny_budget_refuses_with_the_reset_time_and_what_remains(server: Server, db: Database) -> None:
    api.set_budget(db, None, "daily", limit_usd=Decimal("0.0001"), timezone="America/New_York")
    client = await connected(server, "alice")
    try:
        mark, _ = await client.reply("/usage")  # the panel's text, also sent as a message
        (panel,) = said(client, mark)
        assert "### Budget" in panel and "| daily | $0.0001 | $0 | **$0.0001** |" in panel
        mark, streamed = await client.reply("Hello there")
        assert streamed == ""
        (message,) = said(client, mark)
        assert message.startswith("This reply could cost up to $")  # the worst case reserved, named
        assert "(the longest answer the model may give), and your daily budget of $0.0001 has $0.0001 left" in message
        assert "(spent $0)" in message
        (status,) = api.budget_status(db, "password_alice")
        assert status.period_end is not None
        assert f"It resets on {status.period_end.strftime('%Y-%m-%d %H:%M')} UTC." in message
        api.set_budget(db, None, "daily", limit_usd=Decimal("1"))  # raised: the same chat now works
        mark, streamed = await client.reply("Hello again")
        assert "offline demo model" in streamed
        assert not any(m.startswith("This reply could cost") for m in said(client, mark))
    finally:
        await client.close()
    [row] = db.fetch_all("select status, total_cost from request_logs")
    assert row["status"] == "success" and row["total_cost"] > 0
    assert db.fetch_one("select count(*) as n from budget_reservations")["n"] == 0
    assert_counters_match_ledger(db)


async def test_a_rate_limit_says_when_to_retry(server: Server, db: Database) -> None:
    api.set_rate_limit(db, None, rpm=1, tpm=None)
    client = await connected(server, "bob")
    try:
        _, first = await client.reply("One")
        assert "offline demo model" in first
        mark, second = await client.reply("Two")
        assert second == ""
        (message,) = said(client, mark)
        assert message.startswith("You are sending messages too quickly. Please try again in ")
        assert int(message.split("again in ")[1].split()[0]) in range(50, 61)
    finally:
        await client.close()
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 1


def test_the_gateway_of_llmtally_up_bills_the_keys_user_under_the_chats_budgets(server: Server, db: Database) -> None:
    login_cookie(server, "alice", "alice-password")  # her profile, as the chat makes it
    token, _ = create_token(db, "password_alice", name="script")
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=token, max_retries=0) as client:
        assert "llmtally/demo" in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(model="llmtally/demo", messages=[{"role": "user", "content": "Hi"}])
        assert "offline demo model" in (reply.choices[0].message.content or "")
        api.set_budget(db, "password_alice", "daily", limit_usd=Decimal("0.0000001"))
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="llmtally/demo", messages=[{"role": "user", "content": "Again"}])
    assert refused.value.code == "budget_exceeded" and "daily budget exceeded" in refused.value.message
    deadline = time.monotonic() + 10
    while not (rows := db.fetch_all("select * from request_logs")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = rows
    assert (row["user_profile_id"], row["model"], row["status"]) == ("password_alice", "demo", "success")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        reply.usage.prompt_tokens,
        reply.usage.completion_tokens,
    )
    assert db.fetch_one("select count(*) as n from budget_reservations")["n"] == 0
    assert_counters_match_ledger(db)
