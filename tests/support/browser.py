"""Debian's Chromium for the browser tests, with the flags this closed network needs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def chromium_or_skip() -> str:
    """Chromium's path; in CI a missing Chromium fails the test instead of skipping it."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (.ci/run installs it with apt-get)")
        pytest.skip("Chromium not installed: apt-get install chromium")
    return CHROMIUM
