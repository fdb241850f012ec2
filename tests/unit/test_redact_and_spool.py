"""Redaction patterns and the journal's record format."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from llmtally.domain.events import UsageEvent
from llmtally.ledger.redact import redact_text, redact_value
from llmtally.ledger.spool import Spool, decode, encode


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+x@mail.example.co.uk now", "write to [EMAIL] now"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("call +44 20 7946 0958 today", "call [PHONE] today"),
        ("key sk-proj-abcdefghijklmnop1234", "key [SECRET]"),
        ("sk_live_abcdefghijklmnop1234", "[SECRET]"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: [SECRET]"),
        ("AKIAIOSFODNN7EXAMPLE", "[SECRET]"),
        ("hash 0123456789abcdef0123456789abcdef", "hash [SECRET]"),
        ("year 2026, 42 apples, pi 3.14159", "year 2026, 42 apples, pi 3.14159"),
        ("order 1234 5678 9012 3456 7", "order 1234 5678 9012 3456 7"),  # 17 digits failing Luhn
        ("plain words only", "plain words only"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_redact_value_walks_any_structure() -> None:
    value = {"messages": [{"content": "me@example.org"}, ("sk-abcdefghijklmnop123",)], "n": 3, "b": b"x"}
    assert redact_value(value) == {"messages": [{"content": "[EMAIL]"}, ["[SECRET]"]], "n": 3, "b": {"base64": "eA=="}}


def test_a_record_is_one_ascii_line_and_round_trips() -> None:
    at = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    event = UsageEvent(
        "id-1\n",
        "m",
        "success",
        prompt_tokens=3,
        messages=[{"content": "a\x00b\ud800\n"}],
        metadata={"k": 1},
        created_at=at,
        stream=True,
        first_token_ms=321,
    )
    line = encode(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    back = decode(line)
    assert (back.litellm_call_id, back.prompt_tokens, back.created_at, back.metadata) == ("id-1\n", 3, at, {"k": 1})
    assert (back.stream, back.first_token_ms) == (True, 321)
    assert back.messages == [{"content": "a\x00b\ud800\n"}]  # cleaned when written, not here


def test_an_event_without_a_call_id_gets_one() -> None:
    assert decode(encode(UsageEvent("", "m", "success"))).litellm_call_id.startswith("llmtally-")


def test_content_modes_and_the_size_limit() -> None:
    event = UsageEvent("i", "m", "success", messages=[{"content": "x" * 100_000}], response={"r": "me@example.org"})
    assert decode(encode(event, content="none")).messages is None
    assert decode(encode(event, content="redacted")).response == {"r": "[EMAIL]"}
    cut = decode(encode(event, max_content_bytes=20_000))
    assert cut.content_truncated and cut.content_original_bytes is not None and cut.content_original_bytes > 100_000
    assert cut.messages["llmtally_truncated"] is True
    assert len(json.dumps(cut.messages)) < 20_000


def test_a_response_id_in_the_metadata_outlives_every_content_mode() -> None:
    """The gateway finds a response's owner by metadata.response_id: masked, cut or dropped content keeps it."""
    made = "resp_bGl0ZWxsbTpjdXN0b21fbGxtX3Byb3ZpZGVyOm9wZW5haTttb2RlbF9pZDo3ZjliMmMzMTljNTg5N2MxNDc4NjU"
    event = UsageEvent(
        "i",
        "m",
        "success",
        messages=[{"content": "x" * 100_000}],
        response={"id": made},
        metadata={"response_id": made},
    )
    assert decode(encode(event, content="redacted")).response == {"id": "[SECRET]"}  # the content loses it
    for content, limit in (("none", 4 << 20), ("redacted", 4 << 20), ("full", 20_000)):
        assert decode(encode(event, content=content, max_content_bytes=limit)).metadata == {"response_id": made}


def test_spool_drops_what_is_committed(tmp_path: object) -> None:
    from pathlib import Path

    directory = Path(str(tmp_path))
    spool = Spool(directory, segment_bytes=200).open()
    for i in range(5):
        spool.append(encode(UsageEvent(f"e{i}", "m", "success")))
    assert spool.pending_events == 5 and len(list(directory.glob("*.seg"))) > 1  # rotated
    while (chunk := spool.read(max_lines=2, max_bytes=1 << 20)) is not None:
        spool.commit(chunk)
    assert spool.pending_events == 0
    assert spool.close() == 0 and list(directory.glob("*.seg")) == []
