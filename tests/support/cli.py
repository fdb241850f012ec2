"""Running the ``llmtally`` command in tests.

``llmtally(...)`` runs a command in this process with click's CliRunner: the same command objects,
argument parsing, error handling and output as the installed entry point, without a new interpreter
(importing LiteLLM costs seconds per process). ``llmtally_process(...)`` runs ``python -m llmtally``
for real; a few tests keep it to prove that a user mistake prints one line and no traceback from the
actual program.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from llmtally.cli.app import load_commands

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CliResult:
    """What a command printed and how it exited, shaped like ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


def _environment(database_url: str | None, home: Path | None, columns: int = 200) -> dict[str, str | None]:
    """The variables a user's shell would pass: no LLMTALLY_* of the test process, the URL and home given."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LLMTALLY_") or k == "DATABASE_URL"}
    env = {**unset, "COLUMNS": str(columns)}
    if database_url:
        env["DATABASE_URL"] = database_url
    # Without a home of its own the command uses the test's (tests/conftest.py sets one per test).
    env["LLMTALLY_HOME"] = str(home) if home else os.environ.get("LLMTALLY_HOME")
    return env


def llmtally(
    *args: str,
    database_url: str | None = None,
    home: Path | None = None,
    input: str | None = None,
    columns: int = 200,
) -> CliResult:
    """Run ``llmtally ARGS`` in this process, in a terminal COLUMNS wide."""
    result = CliRunner().invoke(
        load_commands(), list(args), env=_environment(database_url, home, columns), input=input, prog_name="llmtally"
    )
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # The real program would have printed this traceback: keep it where the tests look for one.
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return CliResult(result.exit_code, result.stdout, stderr)


def llmtally_process(*args: str, database_url: str | None = None, home: Path | None = None) -> CliResult:
    """Run ``python -m llmtally ARGS`` in a new interpreter."""
    merged: dict[str, str | None] = {**os.environ, **_environment(database_url, home)}
    env = {k: v for k, v in merged.items() if v is not None}
    done = subprocess.run(
        [sys.executable, "-m", "llmtally", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: CliResult, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
