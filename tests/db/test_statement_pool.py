"""Single statements on the event loop (llmtally.db.statements.StatementPool): each its own transaction,
committed when it returns, its driver errors told as llmtally's one-line errors."""

from __future__ import annotations

import asyncio

import pytest

from llmtally.db import Database
from llmtally.db.statements import StatementPool
from llmtally.errors import DatabaseError, DatabaseUnreachable, SchemaNotReady
from tests.support.server import free_port

pytestmark = pytest.mark.sql


def test_a_statement_is_committed_when_it_returns_and_concurrent_ones_share_the_pool(db: Database) -> None:
    db.execute("create table public.pool_probe (n integer primary key)")

    async def run() -> tuple[list[list[dict[str, object]]], object, object]:
        statements = StatementPool(db, max_size=3)
        try:
            insert = "insert into public.pool_probe values (%s) returning n"
            answers = await asyncio.gather(*(statements.fetch_all(insert, (n,)) for n in range(20)))
            # committed as each returned: another connection sees every row while the pool is still open,
            # and none of the pool's connections sits in an open transaction
            seen = await asyncio.to_thread(db.fetch_one, "select count(*) as n from public.pool_probe")
            open_transactions = await asyncio.to_thread(
                db.fetch_one,
                "select count(*) as n from pg_stat_activity where datname = current_database()"
                " and state like 'idle in transaction%%'",
            )
            return answers, seen, open_transactions
        finally:
            await statements.aclose()

    answers, seen, open_transactions = asyncio.run(run())
    assert sorted(int(str(rows[0]["n"])) for rows in answers) == list(range(20))
    assert seen == {"n": 20}
    assert open_transactions == {"n": 0}


def test_driver_errors_are_llmtally_errors(db: Database) -> None:
    async def run(statements: StatementPool, sql: str) -> None:
        try:
            await statements.fetch_all(sql)
        finally:
            await statements.aclose()

    with pytest.raises(SchemaNotReady, match="llmtally migrate"):
        asyncio.run(run(StatementPool(db), "select * from public.no_such_table"))
    with pytest.raises(DatabaseError, match="division by zero"):
        asyncio.run(run(StatementPool(db), "select 1 / 0"))
    nowhere = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres?connect_timeout=1")
    with pytest.raises(DatabaseUnreachable):
        asyncio.run(run(StatementPool(nowhere, wait_s=1), "select 1"))
