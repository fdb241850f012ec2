"""Every SQL statement of the package is a named query in sql/queries/*.sql, and every name is used.

Read from the source with Python's own parser: string literals (docstrings left out), the names given
to ``query(...)``, and the SQL-looking literals outside ``llmtally.db``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import llmtally
from llmtally.db.queries import parse, queries

PACKAGE = Path(llmtally.__file__).parent

# The start of an SQL statement as this package writes them (lowercase or not); prose such as
# "Show this month's usage" or "Create a token for USER_ID" does not match.
SQL_STATEMENT = re.compile(
    r"""^\s*(
        select\s+(\S+\s+)*?from\s | select\s+\w*\(.*\) | select\s+\d+\b
      | insert\s+into\s | update\s+[\w.]+(\s+as\s+\w+)?\s+set\s | delete\s+from\s
      | with\s+\w+\s+as\s*\( | copy\s+[\w.]+.*\s(from|to)\s+(stdin|stdout)
      | create\s+(or\s+replace\s+)?(temp\s+|temporary\s+|unique\s+)?
            (table|index|view|function|database|schema|role|trigger|type|policy)\b
      | (alter|drop)\s+(table|index|view|function|database|schema|role|trigger|type|policy)\b
      | set\s+(constraints|role|local|session)\b | grant\s+\w+.*\son\s | revoke\s+\w+.*\son\s
      | truncate\s | lock\s+table\s
    )""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


def looks_like_sql(text: str) -> bool:
    return SQL_STATEMENT.match(text) is not None


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _literals(path: Path) -> Iterator[tuple[int, str]]:
    """The string literals of a module (f-strings with their holes as ``{}``), docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    parts_of_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in skip and id(node) not in parts_of_fstrings:
                yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield node.lineno, text


def _names_given_to(function: str) -> Iterator[tuple[Path, int, str]]:
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            first = node.args[0]
            if called == function and isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield path, node.lineno, first.value


def test_every_named_query_is_used_in_the_package() -> None:
    literals = {text for path in _modules() for _, text in _literals(path)}
    unused = sorted(set(queries()) - literals)
    assert not unused, f"named queries no module names: {unused}"


@pytest.mark.parametrize("function", ["query", "_rows"])
def test_every_name_given_to_query_exists(function: str) -> None:
    given = list(_names_given_to(function))
    assert given, f"no call of {function}() found: the scan is broken"
    missing = [f"{p.relative_to(PACKAGE)}:{line} {name}" for p, line, name in given if name not in queries()]
    assert not missing, f"names of no query in sql/queries/: {missing}"


def test_no_module_outside_the_database_package_holds_sql() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {text.strip()[:60]!r}"
        for path in _modules()
        if "db" not in path.relative_to(PACKAGE).parts[:1]
        for line, text in _literals(path)
        if looks_like_sql(text)
    ]
    assert not found, "SQL written as Python strings (make each a named query in sql/queries/):\n" + "\n".join(found)


def test_the_database_package_holds_no_sql_either() -> None:
    """llmtally.db composes SQL only from named queries (psycopg.sql for identifiers)."""
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {text.strip()[:60]!r}"
        for path in sorted((PACKAGE / "db").rglob("*.py"))
        for line, text in _literals(path)
        if looks_like_sql(text)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "text",
    [
        "select 1 as ok",
        "select id, raw_event from public.quarantine where id = %s",
        "select llmtally_release(%s) as released",
        "insert into chat.users (identifier) values (%(i)s)",
        "update public.request_logs set messages = null",
        "update budgets as b set hard = true",
        "delete from public.sessions where user_id = %s",
        "\n    with gone as (delete from t returning *) insert into t select * from gone",
        'create database "{}"',
        "create temp table s (r jsonb) on commit drop",
        "set constraints all immediate",
        "copy llmtally_stage (seq, model) from stdin",
        "SELECT count(*) FROM public.budgets",
    ],
)
def test_the_scan_recognises_sql(text: str) -> None:
    assert looks_like_sql(text)


@pytest.mark.parametrize(
    "text",
    [
        "Show this month's usage",
        "Create a token for USER_ID and print it once (only its hash is stored).",
        "Set the budget of USER (or `default`) for one period, replacing the one there was.",
        "delete every personal record of {}?",
        "with no expiry",
        "Delete calls older than M days (totals stay).",
        "Revoke the token with this id or prefix (see `tokens list`); it stops working at once.",
        "select a model",
    ],
)
def test_the_scan_leaves_prose_alone(text: str) -> None:
    assert not looks_like_sql(text)


def test_a_name_written_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="written twice"):
        parse("-- one --\nselect 1\n\n-- one --\nselect 2\n", "twice.sql")


def test_no_comment_of_a_named_query_holds_a_positional_placeholder() -> None:
    """The driver counts a ``%s`` in a comment as a parameter: the query would then fail at run time."""
    found = [
        f"{name}: {line.strip()}"
        for name, body in queries().items()
        for line in body.splitlines()
        if line.lstrip().startswith("--") and "%s" in line
    ]
    assert not found, found
