"""PostgreSQL servers the tests may create databases on: the embedded one and TEST_DATABASE_URL's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from llmtally.db import EmbeddedServer


def with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class Cluster:
    """A PostgreSQL server we may create databases on."""

    def __init__(self, admin_url: str, *, embedded: EmbeddedServer | None = None) -> None:
        self.admin_url = admin_url
        self.embedded = embedded
        self.created: list[str] = []

    def url(self, dbname: str) -> str:
        return with_database(self.admin_url, dbname)

    def create_database(self, template: str | None = None) -> str:
        name = f"llmtally_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        self.created.append(name)
        return name

    @contextmanager
    def database(self, template: str | None = None) -> Iterator[str]:
        """A new database (a clone of ``template``, else empty) for the block; its URL; dropped after."""
        name = self.create_database(template)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop_database(name)


def make_throwaway(admin_url: str) -> None:
    """Settings for a test server whose data is thrown away: no fsync, no full-page writes, no commit wait.

    Only for the embedded test server, whose data directory the run deletes; a server named by
    TEST_DATABASE_URL is somebody else's and is left as it is.
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for setting in ("fsync", "full_page_writes", "synchronous_commit"):
            conn.execute(f"alter system set {setting} = off")
        conn.execute("select pg_reload_conf()")
