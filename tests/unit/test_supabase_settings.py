"""Choosing the Supabase API sink from the settings, and refusing keys that browsers hold."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from llmtally import Settings, UsageEvent
from llmtally.errors import ConfigurationError
from llmtally.ledger.supabase_api import SupabaseApiSink, check_server_key, event_payload, key_role
from tests.support.postgrest_standin import PUBLISHABLE_KEY, SECRET_KEY, make_jwt

URL = "https://abcdefghijklmnop.supabase.co"


@pytest.mark.parametrize(
    ("key", "role"),
    [
        (PUBLISHABLE_KEY, "anon"),
        (SECRET_KEY, "service_role"),
        (make_jwt("anon"), "anon"),
        (make_jwt("service_role"), "service_role"),
        (make_jwt("authenticated", sub="u"), "authenticated"),
        ("not-a-key", None),
        ("a.b.c", None),
    ],
    ids=["publishable", "secret", "jwt-anon", "jwt-service_role", "jwt-authenticated", "not-a-key", "three-dots"],
)
def test_key_role(key: str, role: str | None) -> None:
    assert key_role(key) == role


@pytest.mark.parametrize(
    "key",
    [PUBLISHABLE_KEY, make_jwt("anon"), make_jwt("authenticated", sub="u")],
    ids=["publishable", "jwt-anon", "jwt-authenticated"],
)
def test_public_keys_are_refused_in_one_line_without_the_key(key: str) -> None:
    with pytest.raises(ConfigurationError, match="service_role key or a secret key") as info:
        check_server_key(key)
    assert "\n" not in str(info.value) and key not in str(info.value)
    with pytest.raises(ConfigurationError):
        SupabaseApiSink(URL, key)


def test_server_keys_pass() -> None:
    for key in (SECRET_KEY, make_jwt("service_role")):
        check_server_key(key)


def test_the_api_is_chosen_only_with_a_url_a_key_and_no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().supabase_api() is None
    key = make_jwt("service_role")
    monkeypatch.setenv("SUPABASE_URL", URL)
    with pytest.raises(ConfigurationError, match="no server key"):
        Settings().supabase_api()
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    settings = Settings()
    assert settings.supabase_api() == (URL, key)
    assert key not in repr(settings) and key not in str(settings.model_dump())
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example.com:6543/postgres")
    assert Settings().supabase_api() is None  # a database URL wins
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.delenv("SUPABASE_URL")
    with pytest.raises(ConfigurationError, match="no SUPABASE_URL"):
        Settings().supabase_api()
    monkeypatch.setenv("LLMTALLY_SUPABASE_URL", URL)
    monkeypatch.setenv("LLMTALLY_SUPABASE_SERVICE_KEY", SECRET_KEY)
    assert Settings().supabase_api() == (URL, SECRET_KEY)  # the prefixed names win


def test_an_event_travels_as_json_with_exact_costs() -> None:
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=dt.UTC)
    event = UsageEvent(
        "c1", "gpt-4o-mini", "success", provider="openai", user_profile_id="google_1", prompt_tokens=10,
        completion_tokens=20, reported_cost=0.0000135, messages=[{"role": "user", "content": "hi"}],
        metadata={"n": Decimal("1.10")}, created_at=at,
    )  # fmt: skip
    payload = event_payload(event)
    assert "seq" not in payload
    assert payload["total_cost"] == "0.0000135" and payload["cost_status"] == "priced"
    assert payload["messages"] == [{"role": "user", "content": "hi"}]
    assert payload["metadata"] == {"n": "1.10"}
    assert payload["created_at"] == "2026-01-02T03:04:05.006000+00:00"
    assert event_payload(event, store_content=False)["messages"] is None
