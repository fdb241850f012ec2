"""Emptying a migrated database between tests that share it (and the server running on it)."""

from __future__ import annotations

import psycopg

# Every table the migrations create, in the schemas they create them in; the migration history stays.
_TABLES = """
select format('%I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where c.relkind in ('r', 'p') and n.nspname in ('public', 'chat') and c.relname <> 'llmtally_migrations'
"""


def reset_ledger(url: str) -> None:
    """Leave the database as a fresh clone of the migrated template would be: every table empty."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(_TABLES)]
        conn.execute(f"truncate {', '.join(tables)} restart identity cascade")
