"""Masking of personal data and secrets in stored content (content mode ``redacted``).

Masked: e-mail addresses, card numbers (13-19 digits passing the Luhn check), phone numbers
(9 or more digits, optionally with +, spaces, dots, dashes, parentheses), and API-key-like strings
(``sk-...``, ``sk_live_...``, ``Bearer ...`` tokens, GitHub/Slack/AWS keys, long hex or base64 runs).
Each match becomes a fixed marker such as ``[EMAIL]``. Usage and cost are never touched.
"""

from __future__ import annotations

import re
from typing import Any

from llmtally.ledger.sanitize import _default

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_KEYS = re.compile(
    r"\bBearer\s+[A-Za-z0-9._~+/=-]{12,}"
    r"|\b(?:sk|pk|rk)[-_][A-Za-z0-9_-]{12,}"
    r"|\b(?:ghp|gho|ghu|ghs|github_pat)_[A-Za-z0-9_]{20,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAKIA[0-9A-Z]{16}\b"
    r"|\bAIza[0-9A-Za-z_-]{30,}"
)
# Long runs of key characters (hex, base64, url-safe base64) holding both digits and letters.
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{32,}")
_DIGIT = re.compile(r"\d")
# Runs of 9+ digits with separators: a card number if 13-19 digits pass the Luhn check, else a phone.
_NUMBER = re.compile(r"(?<![\w+])\+?\(?\d[\d \t().-]{7,}\d(?!\w)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _number(match: re.Match[str]) -> str:
    run = match.group()
    digits = "".join(c for c in run if c.isdigit())
    if 13 <= len(digits) <= 19 and _luhn(digits):
        return "[CARD]"
    if 9 <= len(digits) <= 15:
        return "[PHONE]"
    return run


def _token(match: re.Match[str]) -> str:
    run = match.group()
    has_digit = any(c.isdigit() for c in run)
    has_letter = any(c.isalpha() for c in run)
    return "[SECRET]" if has_digit and has_letter else run


def redact_text(text: str) -> str:
    """``text`` with e-mails, secrets, card numbers and phone numbers masked."""
    if not text:
        return text
    text = _KEYS.sub("[SECRET]", text)
    if "@" in text:
        text = _EMAIL.sub("[EMAIL]", text)
    if _DIGIT.search(text) is None:
        return text
    text = _TOKEN.sub(_token, text)
    return _NUMBER.sub(_number, text)


def _walk(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _walk(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(v) for v in value]
    return _walk(_default(value))


def redact_value(value: Any) -> Any:
    """A JSON-able copy of ``value`` with every string masked (content that cannot be walked is dropped)."""
    try:
        return _walk(value)
    except (RecursionError, ValueError, TypeError):
        return "[content removed: too deeply nested to redact]"
