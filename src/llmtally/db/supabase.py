"""Supabase projects: the migrations in the Supabase CLI's layout, and the optional link to Supabase Auth.

``export_migrations`` writes each packaged migration, byte for byte, as
``supabase/migrations/<timestamp>_llmtally_<version>_<name>.sql``, so ``supabase db push`` applies
the same SQL as ``llmtally migrate``; the CLI records them under the name ``llmtally_<version>_<name>``,
which ``llmtally`` reads as applied (``db/migrations.py``). Before them comes the table in which
``llmtally migrate`` records migrations, which it creates before the first one. A file already
exported, under any timestamp, is not written again; new ones get timestamps after every
migration in the folder.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from llmtally.db.database import Database
from llmtally.db.migrations import MIGRATIONS_TABLE, load_migrations
from llmtally.db.queries import query
from llmtally.errors import UserInputError

MIGRATIONS_DIR = Path("supabase") / "migrations"
AUTH_LINK_NAME = "llmtally_auth_link"
# `llmtally migrate` creates its record table before the first migration, and 0001 refers to it.
TABLE_NAME = "llmtally_migrations_table"
TABLE_SQL = "-- llmtally: the table where `llmtally migrate` records migrations (0001 refers to it).\n" + (
    MIGRATIONS_TABLE.lstrip()
)
_FILE = re.compile(r"^(\d{14})_(.+)\.sql$")


@dataclass(frozen=True)
class ExportResult:
    written: tuple[Path, ...]
    present: tuple[Path, ...]  # already in the folder, byte-identical
    differing: tuple[Path, ...]  # already in the folder with other content: left alone


def auth_link_sql() -> str:
    """The SQL that links user_profiles to auth.users (``sql/supabase/auth_link.sql``)."""
    return (resources.files("llmtally") / "sql" / "supabase" / "auth_link.sql").read_text(encoding="utf-8")


def apply_auth_link(db: Database) -> None:
    """Link user_profiles to Supabase Auth in ``db`` (idempotent; needs auth.users and the migrations)."""
    with db.transaction() as conn:
        conn.execute(auth_link_sql().encode())


def linked_profiles(db: Database) -> int:
    """How many user_profiles are linked to a Supabase Auth user."""
    row = db.fetch_one(query("auth_linked_profiles"))
    return int(row["n"]) if row else 0


def export_migrations(directory: Path, *, with_auth_link: bool = False, now: dt.datetime | None = None) -> ExportResult:
    """Write the migrations missing from ``directory/supabase/migrations`` (see the module's docstring)."""
    folder = Path(directory) / MIGRATIONS_DIR
    if folder.exists() and not folder.is_dir():
        raise UserInputError(f"{folder} exists and is not a directory")
    package = resources.files("llmtally") / "sql"
    wanted = [(TABLE_NAME, TABLE_SQL.encode("utf-8"))] + [
        (f"llmtally_{m.filename.removesuffix('.sql')}", (package / "migrations" / m.filename).read_bytes())
        for m in load_migrations()
    ]
    if with_auth_link:
        wanted.append((AUTH_LINK_NAME, (package / "supabase" / "auth_link.sql").read_bytes()))

    existing: dict[str, Path] = {}
    latest = ""
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        match = _FILE.match(path.name)
        if match:
            existing.setdefault(match.group(2), path)
            latest = max(latest, match.group(1))

    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0, tzinfo=None)
    if latest and stamp <= (last := dt.datetime.strptime(latest, "%Y%m%d%H%M%S")):
        stamp = last + dt.timedelta(seconds=1)
    written: list[Path] = []
    present: list[Path] = []
    differing: list[Path] = []
    for name, content in wanted:
        if name in existing:
            (present if existing[name].read_bytes() == content else differing).append(existing[name])
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stamp:%Y%m%d%H%M%S}_{name}.sql"
        path.write_bytes(content)
        written.append(path)
        stamp += dt.timedelta(seconds=1)
    return ExportResult(tuple(written), tuple(present), tuple(differing))
