"""`llmtally supabase export` and `llmtally supabase link-auth`, run for real."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from llmtally.db import Database
from llmtally.db.migrations import load_migrations
from tests.support.cli import assert_one_line_error, llmtally

PACKAGE_SQL = resources.files("llmtally") / "sql"
NAME = re.compile(r"^(\d{14})_(llmtally_.+)\.sql$")


def exported(directory: Path) -> dict[str, Path]:
    """The exported files by name (without the timestamp); every file name has the Supabase CLI's layout."""
    files = sorted((directory / "supabase" / "migrations").iterdir())
    assert all(NAME.match(p.name) for p in files), [p.name for p in files]
    return {NAME.match(p.name).group(2): p for p in files}  # type: ignore[union-attr]


def stamp(path: Path) -> str:
    return path.name[:14]


def test_export_writes_each_migration_once_byte_for_byte(tmp_path: Path) -> None:
    first = llmtally("supabase", "export", str(tmp_path))
    assert first.returncode == 0, first.stderr
    files = exported(tmp_path)
    migrations = [f"llmtally_{m.filename.removesuffix('.sql')}" for m in load_migrations()]
    assert list(files) == ["llmtally_migrations_table", *migrations]  # timestamps sort them in order
    assert len({stamp(p) for p in files.values()}) == len(files)
    for migration in load_migrations():
        packaged = (PACKAGE_SQL / "migrations" / migration.filename).read_bytes()
        assert files[f"llmtally_{migration.filename.removesuffix('.sql')}"].read_bytes() == packaged
    assert "supabase db push" in first.stdout

    before = {p.name: p.stat().st_mtime_ns for p in files.values()}
    second = llmtally("supabase", "export", str(tmp_path))
    assert second.returncode == 0 and "nothing to write" in second.stdout
    assert {p.name: p.stat().st_mtime_ns for p in exported(tmp_path).values()} == before

    # A migration not exported yet (as after an upgrade) is added, and only it, after the newest file.
    newest = files[migrations[-1]]
    newest.unlink()
    third = llmtally("supabase", "export", str(tmp_path))
    assert third.returncode == 0, third.stderr
    again = exported(tmp_path)
    assert set(again) == set(files)
    assert [line for line in third.stdout.splitlines() if line.startswith("wrote")] == [
        f"wrote {again[migrations[-1]]}"
    ]
    assert stamp(again[migrations[-1]]) > max(stamp(again[name]) for name in migrations[:-1])
    assert (
        again[migrations[-1]].read_bytes() == (PACKAGE_SQL / "migrations" / load_migrations()[-1].filename).read_bytes()
    )


def test_export_with_the_auth_link_and_an_edited_file(tmp_path: Path) -> None:
    assert llmtally("supabase", "export", str(tmp_path)).returncode == 0
    linked = llmtally("supabase", "export", "--with-auth-link", str(tmp_path))
    assert linked.returncode == 0, linked.stderr
    files = exported(tmp_path)
    assert list(files)[-1] == "llmtally_auth_link"
    assert files["llmtally_auth_link"].read_bytes() == (PACKAGE_SQL / "supabase" / "auth_link.sql").read_bytes()

    edited = files["llmtally_0001_ledger"]
    edited.write_text(edited.read_text() + "\n-- edited by hand\n")
    result = llmtally("supabase", "export", str(tmp_path))
    assert_one_line_error(result, "left alone", edited.name)
    assert edited.read_text().endswith("-- edited by hand\n")


def test_link_auth_prints_or_applies_the_sql(supabase_db_url: str, db_url: str) -> None:
    printed = llmtally("supabase", "link-auth", "--print")
    assert printed.returncode == 0 and printed.stdout == (PACKAGE_SQL / "supabase" / "auth_link.sql").read_text()

    with Database(supabase_db_url) as db:
        db.execute("insert into auth.users (id, email) values ('0b5e7c4e-8f4e-4c38-9d7a-3f1f6f1c2a10', 'a@b.c')")
    applied = llmtally("supabase", "link-auth", database_url=supabase_db_url)
    assert applied.returncode == 0, applied.stderr
    assert "1 Supabase user\n" in applied.stdout
    with Database(supabase_db_url) as db:
        assert db.fetch_all("select user_id, email from user_profiles") == [
            {"user_id": "0b5e7c4e-8f4e-4c38-9d7a-3f1f6f1c2a10", "email": "a@b.c"}
        ]

    assert_one_line_error(llmtally("supabase", "link-auth", database_url=db_url), "auth.users does not exist")
