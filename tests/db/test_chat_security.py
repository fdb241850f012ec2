"""The chat app's threads (schema ``chat``): each user reads only their own; only the server writes; a chat
session id keeps its user."""

from __future__ import annotations

import psycopg
import pytest

from llmtally.db import Database
from llmtally.errors import InsufficientPrivilege, LlmtallyError

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

TABLES = ("users", "threads", "steps", "elements", "feedbacks")


@pytest.fixture
def chats(db: Database) -> Database:
    with db.transaction() as conn:
        for user in ("google_111", "github_222"):
            uid = conn.execute("insert into chat.users (identifier) values (%s) returning id", (user,)).fetchone()[0]
            conn.execute(
                "insert into chat.threads (id, name, user_id, user_identifier) values (%s, %s, %s, %s)",
                (f"t-{user}", f"thread of {user}", uid, user),
            )
            conn.execute(
                "insert into chat.steps (id, thread_id, type, output) values (%s, %s, 'user_message', 'hi')",
                (f"s-{user}", f"t-{user}"),
            )
            conn.execute(
                "insert into chat.elements (id, thread_id, step_id, name) values (%s, %s, %s, 'note')",
                (f"e-{user}", f"t-{user}", f"s-{user}"),
            )
            conn.execute(
                "insert into chat.feedbacks (id, step_id, thread_id, value) values (%s, %s, %s, 1)",
                (f"f-{user}", f"s-{user}", f"t-{user}"),
            )
    return db


@pytest.mark.parametrize("table", TABLES)
def test_each_user_reads_only_their_own_chat_rows(chats: Database, table: str) -> None:
    everything = chats.fetch_all(f"select * from chat.{table}")
    assert len(everything) == 2
    for user in ("google_111", "github_222"):
        mine = chats.fetch_all_as_user(user, f"select * from chat.{table}")
        assert len(mine) == 1, (table, user, mine)
        owner = mine[0].get("identifier") or mine[0].get("user_identifier") or mine[0].get("thread_id")
        assert user in str(owner)


@pytest.mark.parametrize("table", TABLES)
def test_anon_reads_no_chat_table(chats: Database, table: str) -> None:
    with pytest.raises(InsufficientPrivilege):
        chats.fetch_all_as_user(None, f"select * from chat.{table}")


@pytest.mark.parametrize(
    "statement",
    [
        "insert into chat.threads (id, user_identifier) values ('forged', 'github_222')",
        "update chat.threads set name = 'mine now'",
        "delete from chat.steps",
        "insert into chat.feedbacks (id, step_id, value) values ('x', 's-google_111', 0)",
        "delete from chat.users",
    ],
)
def test_users_cannot_write_chat_tables(chats: Database, statement: str) -> None:
    with pytest.raises(InsufficientPrivilege), chats.as_user("google_111") as conn:
        conn.execute(statement)
    assert len(chats.fetch_all("select * from chat.threads")) == 2


def test_every_chat_table_has_rls_and_no_client_write_grant(chats: Database) -> None:
    rows = chats.fetch_all(
        "select c.relname, c.relrowsecurity,"
        " has_table_privilege('authenticated', c.oid, 'insert,update,delete,truncate') as user_writes,"
        " has_table_privilege('anon', c.oid, 'select,insert,update,delete') as anon_any"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'chat' and c.relkind in ('r', 'p')"
    )
    assert {r["relname"] for r in rows} == set(TABLES)
    assert all(r["relrowsecurity"] and not r["user_writes"] and not r["anon_any"] for r in rows), rows


def test_the_chat_schema_is_not_public(chats: Database) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable), psycopg.connect(chats.url) as conn:
        conn.execute("select * from threads")


def test_a_session_id_is_never_moved_to_another_user(db: Database) -> None:
    db.fetch_all("select public.llmtally_link_session('shared-id', 'password_alice')")
    db.fetch_all("select public.llmtally_link_session('shared-id', 'password_alice')")  # the same user: fine
    with pytest.raises(LlmtallyError, match="linked to another user"):
        db.fetch_all("select public.llmtally_link_session('shared-id', 'password_bob')")
    assert db.fetch_all("select user_id from sessions") == [{"user_id": "password_alice"}]
