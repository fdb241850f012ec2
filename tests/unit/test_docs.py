"""Generated documentation matches the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import click

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_cli_docs.py"
    spec = importlib.util.spec_from_file_location("gen_cli_docs", path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_current() -> None:
    expected = _generator().render()
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is out of date: run `python scripts/gen_cli_docs.py`"


def test_cli_reference_covers_every_command() -> None:
    generator = _generator()
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")

    def paths(command: click.Command, path: str) -> list[str]:
        found = [path]
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                if not sub.hidden:
                    found += paths(sub, f"{path} {name}")
        return found

    every = paths(generator._app(), "llmtally")
    assert {"llmtally prices set", "llmtally migrate"} <= set(every)
    for path in every:
        assert f"## `{path}`\n" in text, f"docs/cli.md has no section for `{path}`"
