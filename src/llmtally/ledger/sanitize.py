"""Make arbitrary payload content storable in PostgreSQL text and jsonb columns."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import math
import re
from decimal import Decimal
from typing import Any

# "\u0000" is valid JSON but PostgreSQL rejects it in jsonb; keep the escape's backslash parity.
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def clean_text(value: str | None) -> str | None:
    """Drop NUL characters and replace lone surrogates, which PostgreSQL text cannot hold."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # a model that cannot dump itself is still recorded, as text
            return repr(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return repr(obj)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(value: Any) -> str | None:
    """JSON text that PostgreSQL's jsonb accepts, whatever the input."""
    if value is None:
        return None
    try:
        try:
            text = json.dumps(value, default=_default, ensure_ascii=False, allow_nan=False)
        except ValueError:  # NaN or infinity, which JSON (and jsonb) cannot hold: store null
            text = json.dumps(_finite(value), default=_default, ensure_ascii=False, allow_nan=False)
    except (ValueError, RecursionError, TypeError):
        text = json.dumps(clean_text(repr(value)))
    if "\\u0000" in text:
        text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
    return clean_text(text)
