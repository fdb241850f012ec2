"""Single statements run on the event loop: an asyncio pool of autocommit connections.

:class:`llmtally.db.Database` is synchronous: an async caller runs its statements in a thread
(``asyncio.to_thread``). On the gateway's busiest path, a statement on every request, the thread hop
(handing the call to a worker, waking the loop, the GIL going back and forth) is a cost of its own: run
on the event loop instead, the same statement took the gateway's CPU per streamed request from 1.63 to
1.53 ms at 1 stream and from 1.81 to 1.53 ms at 50 (docs/benchmarks.md, part 7). The pool is opened in the running
loop on first use and closed by :meth:`StatementPool.aclose` (the gateway's shutdown).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from llmtally.db.database import CONNECTION_KWARGS, JSON_LOADS, Database, Row, translate


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(JSON_LOADS, conn)


class StatementPool:
    """Statements of their own (each its own transaction, in one round trip) on ``db``'s server, run on
    the event loop, over at most ``max_size`` connections; a statement waits ``wait_s`` at most for one."""

    def __init__(self, db: Database, *, max_size: int = 8, wait_s: float = 30.0) -> None:
        self._db = db
        self._max_size = max_size
        self._wait_s = wait_s  # for a connection, as long as Database's pool waits, before DatabaseUnreachable
        self._pool: AsyncConnectionPool[Any] | None = None
        self._opening: asyncio.Lock | None = None

    async def _open(self) -> AsyncConnectionPool[Any]:
        if self._pool is not None:
            return self._pool
        self._opening = self._opening or asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                    self._db.url,
                    min_size=1,
                    max_size=self._max_size,
                    kwargs={**CONNECTION_KWARGS, "autocommit": True},
                    configure=_configure,
                    timeout=self._wait_s,
                    open=False,
                    name="llmtally-statements",
                )
                await pool.open(wait=False)  # a request waits for its connection, as from Database's pool
                self._pool = pool
        return self._pool

    async def fetch_all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Run one statement as its own transaction and return its rows (as
        :meth:`Database.fetch_all_autocommit` does, on the event loop)."""
        pool = await self._open()
        try:
            async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql, params)
                rows: list[Row] = await cur.fetchall()
                return rows
        except psycopg.Error as exc:  # PoolTimeout (no connection in time) is one too
            raise translate(exc, self._db.url) from exc

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
