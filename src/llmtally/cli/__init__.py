"""The ``llmtally`` command line. Nouns are groups; user mistakes print one line and exit 1."""

from __future__ import annotations

from llmtally.cli.app import main

__all__ = ["main"]
