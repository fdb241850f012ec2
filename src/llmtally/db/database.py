"""The one module that owns PostgreSQL connections: pool, transactions, roles, error translation."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool

from llmtally.db.embedded import EmbeddedServer
from llmtally.db.queries import query
from llmtally.errors import (
    DATA_REFUSED_CLASSES,
    ConfigurationError,
    DatabaseAuthFailed,
    DatabaseError,
    DatabaseUnreachable,
    DataRefused,
    InsufficientPrivilege,
    LlmtallyError,
    SchemaNotReady,
)
from llmtally.settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
# No server-side prepared statements: a transaction pooler (Supabase's on port 6543, PgBouncer in
# transaction mode) hands each transaction to any server connection, where a statement prepared on
# another one does not exist. Measured: no loss for llmtally's statements (docs/supabase.md).
CONNECTION_KWARGS: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "prepare_threshold": None}
Row = dict[str, Any]
# json/jsonb numbers with a fraction become Decimal, so costs inside jsonb stay exact.
JSON_LOADS = functools.partial(json.loads, parse_float=Decimal)
_actor: ContextVar[str | None] = ContextVar("llmtally_actor", default=None)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Name who the transactions opened inside act for (``web:USER``, ``cli:OS_USER``): the audit log's
    triggers store it with every change of a budget, a limit, a price, a token or a user."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def _configure(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(JSON_LOADS, conn)


def redact(url: str) -> str:
    """The URL (or key=value connection string) with its password masked, safe to print or log."""
    if not re.match(r"^postgres(ql)?://", url):
        try:
            info = psycopg.conninfo.conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            return "<unparseable connection string>"
        if info.get("password"):
            info["password"] = "***"
        return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items()})
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _redact_any_url(url: str) -> str:
    """A URL of any scheme with its password masked (for saying which URL was refused)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("://", 1)[0] + "://..."
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _where(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or "local socket"
        return f"{host}:{parts.port or 5432}" if parts.hostname else host
    except ValueError:
        return "the configured server"


# SQLSTATE classes of a server that cannot be reached or cannot take the connection: connection
# exceptions, operator intervention (shutdown, starting up, statement cancelled), insufficient resources
# (too many connections, disk full).
_UNREACHABLE = ("08", "57", "53")
# What libpq says when the server answered but refused the login.
_AUTH_FAILED = re.compile(
    r"password authentication failed|no password supplied|authentication failed for user|"
    r"role \"[^\"]*\" does not exist|server requested .*password"
)


def translate(exc: BaseException, url: str = "") -> LlmtallyError:
    """Turn a driver exception into an llmtally error with a one-line message."""
    if isinstance(exc, LlmtallyError):
        return exc
    where = _where(url) if url else "the database"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.Error) and (
        # A DataError without a SQLSTATE is a value the driver refused before sending it (a NUL in text).
        isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
        or (exc.sqlstate is not None and exc.sqlstate[:2] in DATA_REFUSED_CLASSES)
    ):
        return DataRefused(text, sqlstate=exc.sqlstate)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return InsufficientPrivilege(f"permission denied: {text}")
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return SchemaNotReady(f"the llmtally schema is missing ({text}); run `llmtally migrate`", applied=0, expected=0)
    if isinstance(exc, psycopg.errors.InvalidPassword | psycopg.errors.InvalidAuthorizationSpecification):
        return DatabaseAuthFailed(f"{where} rejected the login: check the user and password in DATABASE_URL")
    if isinstance(exc, psycopg.errors.InvalidCatalogName):
        return DatabaseError(f"{text} on {where}")
    if isinstance(exc, psycopg.ProgrammingError) and "invalid" in text.lower() and "dsn" in text.lower():
        return ConfigurationError(f"DATABASE_URL is not a valid PostgreSQL URL ({redact(url)})")
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate and not exc.sqlstate.startswith(_UNREACHABLE):
        return DatabaseError(text)  # the server answered: e.g. an object in use, a statement cancelled
    if isinstance(exc, psycopg.OperationalError):
        low = text.lower()
        # Every line: libpq tries each address of a host (::1, then 127.0.0.1) and reports each attempt,
        # so a refused login can follow a first line about an address that did not answer.
        everything = str(exc).lower()
        if _AUTH_FAILED.search(everything):
            return DatabaseAuthFailed(f"{where} rejected the login: check the user and password in DATABASE_URL")
        if "does not exist" in low and "database" in low:
            return DatabaseError(f"{text.split(':')[-1].strip()} on {where}")
        if "permission denied" in low:
            return InsufficientPrivilege(f"permission denied on {where}: {text}")
        detail = re.sub(r"^connection failed: ", "", text)
        return DatabaseUnreachable(f"cannot reach PostgreSQL at {where}: {detail}")
    if isinstance(exc, psycopg.Error):
        return DatabaseError(text)
    return DatabaseError(f"{type(exc).__name__}: {text}")


# The login of per-user reads (migration 0014): LOGIN NOINHERIT, member only of anon and authenticated.
READER_ROLE = "llmtally_authenticator"


def reader_url_for(url: str) -> str:
    """The server's URL logging in as READER_ROLE, without the server role's password."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info.pop("password", None)
    info["user"] = READER_ROLE
    return psycopg.conninfo.make_conninfo(**{k: str(v) for k, v in info.items() if v is not None})


def check_url(url: str) -> None:
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    if (scheme and scheme.group(1).lower() not in ("postgres", "postgresql")) or (not scheme and "=" not in url):
        shown = _redact_any_url(url) if scheme else "a value that is neither a URL nor key=value pairs"
        raise ConfigurationError(f"llmtally needs a PostgreSQL URL (postgresql://...), got {shown}")
    try:
        psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigurationError(f"DATABASE_URL is not a valid PostgreSQL URL ({redact(url)})") from exc


def connect_url(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open one connection, translating failures into llmtally errors."""
    check_url(url)
    try:
        return psycopg.connect(url, **{**CONNECTION_KWARGS, **kwargs})
    except psycopg.Error as exc:
        raise translate(exc, url) from exc


class Database:
    """A pool of connections to one PostgreSQL database.

    ``Database.from_settings`` starts the embedded server when no URL is configured.
    """

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 4,
        embedded: EmbeddedServer | None = None,
        reader_url: str | None = None,
    ) -> None:
        check_url(url)
        if reader_url is not None:
            check_url(reader_url)
        self.url = url
        self.embedded = embedded
        # Per-user reads log in as READER_ROLE: without a URL of their own, the server's without its password.
        self.reader_url = reader_url or reader_url_for(url)
        self._max_size = max_size
        self._pool: ConnectionPool[Any] | None = None
        self._reader_pool: ConnectionPool[Any] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, max_size: int = 4) -> Database:
        reader = settings.reader_database_url
        if settings.database_url:
            return cls(settings.database_url, max_size=max_size, reader_url=reader)
        server = EmbeddedServer(settings.home)
        return cls(server.start(), max_size=max_size, embedded=server, reader_url=reader)

    @property
    def where(self) -> str:
        return "embedded PostgreSQL" if self.embedded else redact(self.url)

    def open(self) -> Database:
        if self._pool is None:
            connect_url(self.url).close()  # fail fast with a precise error
            self._pool = ConnectionPool(
                self.url,
                min_size=1,
                max_size=self._max_size,
                kwargs=dict(CONNECTION_KWARGS),
                configure=_configure,
                open=False,
                name="llmtally",
            )
            self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        return self

    def _open_reader(self) -> ConnectionPool[Any]:
        if self._reader_pool is None:
            try:
                psycopg.connect(self.reader_url, **CONNECTION_KWARGS).close()
            except psycopg.Error as exc:
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise DatabaseAuthFailed(
                    f"per-user reads log in as {psycopg.conninfo.conninfo_to_dict(self.reader_url).get('user')}"
                    f" and {_where(self.url)} refused it ({text}): run `llmtally migrate`, or set"
                    " LLMTALLY_READER_DATABASE_URL (docs/security.md)"
                ) from exc
            self._reader_pool = ConnectionPool(
                self.reader_url,
                min_size=1,
                max_size=max(2, self._max_size // 2),
                kwargs=dict(CONNECTION_KWARGS),
                configure=_configure,
                open=False,
                name="llmtally-reader",
            )
            self._reader_pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        return self._reader_pool

    def close(self) -> None:
        if self._reader_pool is not None:
            self._reader_pool.close()
            self._reader_pool = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self.embedded is not None:
            self.embedded.stop()

    def __enter__(self) -> Database:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; driver errors leave as llmtally errors."""
        pool = self.open()._pool
        assert pool is not None
        try:
            with pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise translate(exc, self.url) from exc

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A transaction, committed on success; inside :func:`acting_as` it names its actor for the audit log."""
        with self.connection() as conn, conn.transaction():
            actor = _actor.get()
            if actor is not None:
                conn.execute(query("set_actor"), (actor,))
            yield conn

    @contextmanager
    def as_user(self, user_id: str | None) -> Iterator[psycopg.Connection[Any]]:
        """A transaction running as Supabase's ``authenticated`` role with the user's JWT claims.

        Exactly what PostgREST does per request, on a connection that logs in as READER_ROLE (as
        PostgREST's ``authenticator``), so row-level security applies to everything read inside and
        SQL that leaves the role (``reset role``) lands on a login with no privilege. ``None`` runs as
        ``anon``.
        """
        role = "authenticated" if user_id else "anon"
        claims = {"sub": user_id, "role": role} if user_id else {"role": role}
        pool = self._open_reader()
        try:
            with pool.connection() as conn, conn.transaction():
                conn.execute(query("act_as"), (role, json.dumps(claims)))
                yield conn
        except psycopg.Error as exc:
            raise translate(exc, self.url) from exc

    def fetch_all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        with self.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def fetch_all_as_user(
        self, user_id: str | None, sql: str, params: Sequence[Any] | dict[str, Any] = ()
    ) -> list[Row]:
        """Like :meth:`fetch_all`, inside :meth:`as_user`: row-level security applies."""
        with self.as_user(user_id) as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def fetch_all_in_transaction(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Run one statement that writes and returns rows (``... returning``), committed on success."""
        with self.transaction() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def fetch_all_autocommit(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Run one statement as its own transaction and return its rows: committed when it returns, in
        one round trip (no ``BEGIN`` before it, no ``COMMIT`` after it, as :meth:`fetch_all` sends)."""
        with self.connection() as conn:
            conn.autocommit = True
            try:
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(sql, params)
                    return cur.fetchall()
            finally:
                if not conn.closed:  # a broken connection is dropped by the pool
                    conn.autocommit = False

    def stream(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, batch: int = 2000) -> Iterator[Row]:
        """Rows of a query read through a server-side cursor, ``batch`` at a time: bounded memory."""
        with (
            self.connection() as conn,
            conn.transaction(),
            conn.cursor(name="llmtally_stream", row_factory=dict_row) as cur,
        ):
            cur.itersize = batch
            cur.execute(sql, params)
            yield from cur

    def fetch_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    def health_check(self) -> None:
        """One trivial query: raises the translated error when the database does not answer."""
        self.fetch_one(query("health_check"))

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        with self.transaction() as conn:
            cur = conn.execute(sql, params)
            return cur.rowcount
