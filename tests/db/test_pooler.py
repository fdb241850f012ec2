"""The ledger through a transaction-mode pooler, as Supabase's pooler on port 6543 runs it.

A PgBouncer of our own (Debian's package) in ``pool_mode = transaction`` sits in front of the local
PostgreSQL named by TEST_DATABASE_URL (127.0.0.1:5432) with a pool smaller than its clients, so
consecutive transactions of one client run on different server connections. A statement prepared
on one of them does not exist on the others: llmtally never prepares statements on the server.

In CI (``CI`` set) a missing pgbouncer or TEST_DATABASE_URL fails the tests; elsewhere they skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import psycopg.errors
import pytest

from llmtally import Analytics, Ledger, Settings, UsageEvent
from llmtally.db import Database
from llmtally.db.migrations import load_migrations, migrate, status
from tests.support.cluster import Cluster
from tests.support.invariants import assert_counters_match_ledger

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

SERVER_CONNECTIONS = 3


def _require(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"the pooler tests need {what} in CI (.ci/run installs pgbouncer and sets TEST_DATABASE_URL)")
    pytest.skip(f"needs {what} (apt-get install pgbouncer; TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/...)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[Cluster]:
    url = os.environ.get("TEST_DATABASE_URL", "")
    _require("TEST_DATABASE_URL (the local PostgreSQL)", bool(url))
    cluster = Cluster(url)
    yield cluster
    cluster.drop_all()


@pytest.fixture(scope="module")
def pgbouncer(local_cluster: Cluster) -> Iterator[tuple[str, int]]:
    """A PgBouncer in transaction mode in front of the local PostgreSQL: (host, port)."""
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    _require("pgbouncer", binary is not None)
    assert binary is not None
    target = psycopg.conninfo.conninfo_to_dict(local_cluster.admin_url)
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="llmtally-pgbouncer-"))
    workdir.chmod(0o755)  # pgbouncer refuses to run as root: started as root, it switches to -u USER
    (workdir / "userlist.txt").write_text('"postgres" ""\n"authenticator" ""\n"llmtally_authenticator" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={target.get('host', '127.0.0.1')} port={target.get('port', 5432)}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {workdir / 'userlist.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    for f in workdir.iterdir():
        f.chmod(0o644)
    command = [binary, str(workdir / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", pwd.getpwnam("postgres").pw_name]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.communicate(timeout=5)[0] if proc.poll() is not None else ""
                    pytest.fail(f"pgbouncer did not start: {out[-2000:]}")
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def pooled(local_cluster: Cluster, pgbouncer: tuple[str, int]) -> Iterator[tuple[str, str]]:
    """An empty database: (URL through the pooler, direct URL)."""
    name = local_cluster.create_database()
    direct = local_cluster.url(name)
    info = psycopg.conninfo.conninfo_to_dict(direct)
    info.update(host=pgbouncer[0], port=str(pgbouncer[1]))
    yield psycopg.conninfo.make_conninfo(**info), direct  # type: ignore[arg-type]
    local_cluster.drop_database(name)


QUERY = "select count(*) from pg_class where relname = %s"


def _run_on_another_server_connection(pooled_url: str, client: psycopg.Connection) -> tuple[int]:
    """Run QUERY on the client while its usual server connection is held by another client.

    PgBouncer hands out the most recently used server connection first, so the holder gets the one
    the client ran on so far and the client's transaction lands on another one.
    """
    with psycopg.connect(pooled_url, autocommit=True) as holder:
        holder.execute("begin")
        holder.execute("select 1")
        try:
            return client.execute(QUERY, ("pg_class",)).fetchone()  # type: ignore[return-value]
        finally:
            holder.execute("commit")


def test_the_pooler_breaks_server_side_prepared_statements(pooled: tuple[str, str]) -> None:
    """The control: psycopg's default (prepare a query run 5 times) fails behind this pooler."""
    pooled_url, _ = pooled
    with psycopg.connect(pooled_url, autocommit=True) as client:
        for _ in range(6):
            client.execute(QUERY, ("pg_class",))
        with pytest.raises(psycopg.errors.InvalidSqlStatementName, match="does not exist"):
            _run_on_another_server_connection(pooled_url, client)


def test_llmtally_connections_never_prepare(pooled: tuple[str, str]) -> None:
    pooled_url, _ = pooled
    with Database(pooled_url) as db, db.connection() as conn:
        conn.autocommit = True
        for _ in range(3):
            for _ in range(6):
                assert conn.execute(QUERY, ("pg_class",)).fetchone() == (1,)
            assert _run_on_another_server_connection(pooled_url, conn) == (1,)


def test_migrate_write_and_read_through_the_pooler(pooled: tuple[str, str]) -> None:
    pooled_url, direct_url = pooled
    with Database(pooled_url) as db:
        assert [m.version for m in migrate(db)] == [m.version for m in load_migrations()]
        assert migrate(db) == [] and status(db).current

    writers, per_writer, users = 4, 600, [f"google_{n}" for n in range(6)]
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            settings = Settings(batch_size=25, flush_interval_ms=10)
            with Ledger(pooled_url, settings=settings) as ledger:
                for i in range(per_writer):
                    user = users[(worker + i) % len(users)]
                    if i % 100 == 0:
                        ledger.upsert_user_sync(user, email=f"{user}@example.com")
                        ledger.link_session_sync(f"chat-{worker}-{i}", user)
                        # reads under RLS interleave with the writes on the pooled server connections
                        with Analytics.for_user(ledger.db, user) as analytics:  # type: ignore[arg-type]
                            assert analytics.user_analytics(user).user_id == user
                        rows = ledger.db.fetch_all_as_user(user, "select distinct user_profile_id from request_logs")  # type: ignore[union-attr]
                        assert {r["user_profile_id"] for r in rows} <= {user}
                    ledger.record(
                        UsageEvent(f"w{worker}-{i}", "gpt-4o-mini", "failure" if i % 9 == 0 else "success",
                                   provider="openai", user_profile_id=None if i % 100 == 1 else user,
                                   session_id=f"chat-{worker}-{i - 1}" if i % 100 == 1 else None,
                                   prompt_tokens=i % 50, completion_tokens=7)
                    )  # fmt: skip
                assert ledger.flush_sync(timeout=120)
                assert ledger.stats.written == per_writer and ledger.stats.failed_attempts == 0
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[0]

    with Database(direct_url) as db:
        summary = db.fetch_one(
            "select count(*) as n, count(distinct litellm_call_id) as ids,"
            " count(*) filter (where user_profile_id is null) as anonymous from request_logs"
        )
        assert summary == {"n": writers * per_writer, "ids": writers * per_writer, "anonymous": 0}
        assert db.fetch_one("select sum(request_count) as n from user_profiles")["n"] == writers * per_writer
        assert db.fetch_one("select count(*) as n from sessions")["n"] == writers * (per_writer // 100)
        assert_counters_match_ledger(db)
