"""src/llmtally/sql/schema.sql is the schema the migrations build, and builds that schema itself.

pg_dump is the embedded server's (PostgreSQL 18), so these run on the embedded server: a dump of another
server version prints the same schema in other words.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def gen_schema() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_schema", ROOT / "scripts" / "gen_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed_schema() -> str:
    text = (ROOT / "src" / "llmtally" / "sql" / "schema.sql").read_text(encoding="utf-8")
    return text.split("\n\n", 1)[1]  # after the header


def test_schema_sql_is_the_dump_of_a_migrated_database(db_url: str) -> None:
    dumped = gen_schema().dump_schema(db_url)
    assert "CREATE TABLE public.request_logs" in dumped and "CREATE POLICY" in dumped and "GRANT" in dumped
    assert dumped == committed_schema(), "schema.sql is out of date: run `python scripts/gen_schema.py`"


def test_a_database_built_from_schema_sql_has_the_same_schema(db_url: str, empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(committed_schema().encode())  # one script of many statements, no parameters
    module = gen_schema()
    assert module.dump_schema(empty_db_url) == module.dump_schema(db_url)
