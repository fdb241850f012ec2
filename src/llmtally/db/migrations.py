"""Numbered SQL migrations, applied in order under an advisory lock and recorded in a table."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from importlib import resources

import psycopg

from llmtally.db.database import Database, translate
from llmtally.db.queries import query
from llmtally.errors import SchemaNotReady

log = logging.getLogger(__name__)

# Any constant works as long as every llmtally process uses the same one.
ADVISORY_LOCK_KEY = 0x6C6C6D74  # "llmt"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# The record of applied migrations, also exported for the Supabase CLI (llmtally.db.supabase): the text
# ends as it always has, so a folder exported by an earlier version holds the same bytes.
MIGRATIONS_TABLE = query("create_migrations_table") + ";\n"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str = field(repr=False)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass(frozen=True)
class MigrationStatus:
    applied: tuple[int, ...]
    pending: tuple[Migration, ...]
    latest: int

    @property
    def current(self) -> bool:
        return not self.pending


def load_migrations() -> list[Migration]:
    """Every migration shipped in the package, in order."""
    folder = resources.files("llmtally") / "sql" / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..n without gaps: {versions}")
    return found


# The Supabase CLI records each migration it pushes by the name after the file's timestamp;
# `llmtally supabase export` names ours llmtally_<version>_<name>.
PUSHED = "pushed by the Supabase CLI"  # stands for the checksum of a migration applied that way
_PUSHED_NAME = r"^llmtally_([0-9]{4})_[a-z0-9_]+$"


def _applied(conn: psycopg.Connection) -> dict[int, str]:
    """Applied migrations and their checksums: our own records, and those pushed by the Supabase CLI."""
    applied: dict[int, str] = {}
    pushed = conn.execute(query("supabase_history_readable")).fetchone()
    if pushed and pushed[0]:
        rows = conn.execute(query("supabase_pushed_versions"), (_PUSHED_NAME,) * 2).fetchall()
        applied |= {int(v): PUSHED for (v,) in rows}
    exists = conn.execute(query("migrations_table_exists")).fetchone()
    if exists and exists[0]:
        rows = conn.execute(query("applied_migrations")).fetchall()
        applied |= {int(v): str(c) for v, c in rows}
    return applied


def status(db: Database) -> MigrationStatus:
    migrations = load_migrations()
    with db.connection() as conn:
        applied = _applied(conn)
        conn.rollback()
    return MigrationStatus(
        applied=tuple(sorted(applied)),
        pending=tuple(m for m in migrations if m.version not in applied),
        latest=migrations[-1].version,
    )


def migrate(db: Database) -> list[Migration]:
    """Apply every pending migration; return those applied. Safe to run from many processes at once.

    All pending migrations run in one transaction under a transaction-scoped advisory lock, so the
    upgrade is all or nothing and works through a transaction pooler (a session lock could be taken
    on one server connection and released on another).
    """
    done: list[Migration] = []
    with db.connection() as conn:
        conn.autocommit = True
        try:
            with conn.transaction():
                conn.execute(query("migration_lock"), (ADVISORY_LOCK_KEY,))
                # Foreign keys checked at each statement, not at commit: a migration that backfills a
                # table with a deferred foreign key and then alters it (enables RLS) would otherwise
                # fail with "pending trigger events" on a database that already holds usage.
                conn.execute(query("check_constraints_at_each_statement"))
                exists = conn.execute(query("migrations_table_exists")).fetchone()
                if not exists or not exists[0]:
                    conn.execute(MIGRATIONS_TABLE)
                applied = _applied(conn)
                for migration in load_migrations():
                    if migration.version in applied:
                        if applied[migration.version] not in (migration.checksum, PUSHED):
                            log.warning("migration %s differs from the one applied", migration.filename)
                        continue
                    log.info("applying migration %s", migration.filename)
                    conn.execute(migration.sql.encode())
                    conn.execute(query("record_migration"), (migration.version, migration.name, migration.checksum))
                    done.append(migration)
        except psycopg.Error as exc:
            raise translate(exc, db.url) from exc
        finally:
            conn.autocommit = False
    return done


def ensure_current(db: Database) -> None:
    """Raise SchemaNotReady, with the command that fixes it, unless every migration is applied."""
    st = status(db)
    if st.pending:
        have = max(st.applied, default=0)
        what = "missing" if not st.applied else f"at migration {have} of {st.latest}"
        raise SchemaNotReady(
            f"the llmtally schema in {db.where} is {what}: run `llmtally migrate`",
            applied=have,
            expected=st.latest,
        )
    if st.applied and max(st.applied) > st.latest:
        raise SchemaNotReady(
            f"the schema in {db.where} is newer (migration {max(st.applied)}) than this llmtally"
            f" ({st.latest}): upgrade llmtally",
            applied=max(st.applied),
            expected=st.latest,
        )
