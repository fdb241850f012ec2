"""docs/security.md tells the truth: its grants table and its `security definer` table equal the catalog
of a migrated database (a change to either without the other fails here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmtally.db import Database

pytestmark = pytest.mark.sql  # the subject is the catalog: runs on every server (tests/conftest.py)

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _table_rows(heading_text: str, first_column: str) -> list[list[str]]:
    """The cells of the markdown table whose header starts with ``| first_column |`` after ``heading_text``."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index(heading_text)
    lines = text[start:].splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith(f"| {first_column} |"))
    rows = []
    for line in lines[header + 2 :]:
        line = line.strip()
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_the_documented_grants_are_the_grants(db: Database) -> None:
    documented = {
        (rel, kind, role): privs
        for rel, kind, auth, anon in _table_rows("## Grants to the client roles", "relation")
        for role, privs in (("authenticated", auth), ("anon", anon))
        if privs != "none"
    }
    actual = {
        (r["rel"], "view" if r["relkind"] == "v" else "table", r["grantee"]): r["privs"]
        for r in db.fetch_all(
            "select n.nspname || '.' || c.relname as rel, c.relkind, g.grantee,"
            "       string_agg(lower(g.privilege_type), ', ' order by g.privilege_type) as privs"
            "  from information_schema.role_table_grants g"
            "  join pg_namespace n on n.nspname = g.table_schema"
            "  join pg_class c on c.relnamespace = n.oid and c.relname = g.table_name"
            " where g.grantee in ('anon', 'authenticated') and n.nspname in ('public', 'chat', 'auth')"
            " group by 1, 2, 3"
        )
    }
    assert documented == actual
    assert len(documented) >= 20  # the table was found and read


def test_the_documented_security_definer_functions_are_the_definer_functions(db: Database) -> None:
    documented = {
        name: set() if who == "nobody (trigger)" else set(re.findall(r"`(\w+)`", who) or [who])
        for name, who, _why in _table_rows("## Functions", "function")
    }
    actual = {
        r["name"]: {grantee for grantee in r["grantees"] if grantee != r["owner"]}
        for r in db.fetch_all(
            "select n.nspname || '.' || p.proname as name, pg_get_userbyid(p.proowner)::text as owner,"
            "       array(select a.grantee::regrole::text"
            "               from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
            "              where a.privilege_type = 'EXECUTE' and a.grantee <> 0) as grantees"
            "  from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where p.prosecdef and n.nspname in ('public', 'chat', 'auth')"
        )
    }
    # the Supabase Auth link (optional, not applied here) is described in prose, not in the table
    assert {k: {g.strip("`") for g in v} for k, v in documented.items()} == actual
    words = {3: "Three", 4: "Four", 5: "Five", 6: "Six"}
    assert f"{words.get(len(documented), len(documented))} functions of the migrations are `security definer`" in (
        DOC.read_text()
    )  # the sentence above the table counts them too
