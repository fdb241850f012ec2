"""SQL composed with identifiers (table and column names), for the statements a named query cannot be.

psycopg's ``sql`` module (``sql.SQL``, ``sql.Identifier``), handed out by the database package so
that no module outside ``llmtally.db`` imports the driver. The composed statement still runs
through ``Database``, which translates the driver's errors.
"""

from psycopg import sql

__all__ = ["sql"]
