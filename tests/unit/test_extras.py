"""Using an optional part without its extra: one line naming the install command, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from llmtally import extras
from llmtally.cli.app import load_commands
from llmtally.errors import MissingExtra
from llmtally.ledger.supabase_api import SupabaseApiSink


def test_up_without_the_app_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.MODULES, "app", ("chainlit", "llmtally_no_such_module"))
    result = CliRunner().invoke(load_commands(), ["up"], prog_name="llmtally")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == "Error: llmtally up needs the app extra: pip install 'llmtally[app]'\n"


def test_supabase_sink_without_the_supabase_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(extras.MODULES, "supabase", ("llmtally_no_such_module",))
    sink = SupabaseApiSink("https://example.supabase.co", "sb_secret_" + "x" * 30)
    with pytest.raises(MissingExtra, match=r"pip install 'llmtally\[supabase\]'") as caught:
        sink.open()
    assert caught.value.missing == ["llmtally_no_such_module"]


def test_every_extra_is_installed_in_the_development_environment() -> None:
    assert {name: extras.missing(name) for name in extras.MODULES} == {name: [] for name in extras.MODULES}


def test_the_core_imports_no_app_package() -> None:
    """`import llmtally` and loading every CLI command import none of the app extra's packages."""
    code = (
        "import sys, llmtally\n"
        "from llmtally.cli.app import load_commands\n"
        "load_commands()\n"
        "print(sorted(m for m in ('chainlit', 'fastapi', 'starlette', 'uvicorn', 'jinja2') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
