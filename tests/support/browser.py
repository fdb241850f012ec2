"""Debian's Chromium for the browser tests, with the flags this closed network needs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

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


WIDTHS = {"desktop": (1400, 1000), "phone": (390, 844)}


def sideways(page: Any) -> list[str]:
    """Elements that make the page scroll sideways (those inside a scrolling section do not)."""
    return list(
        page.evaluate(
            """() => document.documentElement.scrollWidth <= window.innerWidth + 1 ? [] :
                 [...document.querySelectorAll("body *")]
                 .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
                 .filter((e) => !e.closest("section") || getComputedStyle(e.closest("section")).overflowX === "visible")
                 .slice(0, 5).map((e) => e.tagName + "#" + e.id + "." + e.className)"""
        )
    )


def shot(page: Any, name: str) -> None:
    """A full-page screenshot in test-artifacts/, to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def send_message(page: Any, text: str) -> None:
    """Types a message in the chat and sends it; Enter is pressed again if the composer kept the text
    (the first key press can land while the chat's session is still starting)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    composer = page.locator("#chat-input")
    composer.fill(text)
    for _ in range(3):
        composer.press("Enter")
        try:
            page.wait_for_function(
                "(text) => document.querySelector('#chat-input').value !== text", arg=text, timeout=5_000
            )
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the chat did not take the message {text!r}")
