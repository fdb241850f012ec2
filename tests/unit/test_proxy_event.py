"""The proxy plug-in's reading of a LiteLLM Proxy payload, and its settings (the real proxy: tests/proxy)."""

from __future__ import annotations

from typing import Any

import pytest

from llmtally.integrations.litellm.proxy import HEALTH_CHECK, proxy_event
from llmtally.settings import Settings


def payload(metadata: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The shape of what the proxy hands a callback (fields the plug-in reads)."""
    return {
        "litellm_call_id": "call-1",
        "model": "gpt-4o-mini",
        "litellm_params": {"metadata": metadata, "custom_llm_provider": "openai"},
        "standard_logging_object": {"request_tags": metadata.get("tags") or []},
        **extra,
    }


ALICE = {
    "user_api_key_user_id": "alice",
    "user_api_key_team_id": "team-a",
    "user_api_key_alias": "alice-laptop",
    "user_api_key_end_user_id": "customer-7",
    "user_api_key_hash": "0123abcd",
    "user_api_key_auth": "token='0123abcd' ...",
    "requester_ip_address": "203.0.113.9",
    "headers": {"authorization": "Bearer sk-alice"},
    "requester_metadata": {"user_profile_id": "bob", "feature": "search", "headers": {"x": "y"}, "team_id": "evil"},
}


def event(kwargs: dict[str, Any], **settings: Any) -> Any:
    return proxy_event(kwargs, None, None, None, "success", Settings(**settings))


def test_the_key_bills_and_the_client_cannot_choose_whom() -> None:
    found = event(payload(ALICE))
    assert (found.user_profile_id, found.end_user) == ("alice", "customer-7")
    assert found.metadata == {"feature": "search", "team_id": "team-a", "key_alias": "alice-laptop"}


def test_the_client_address_only_when_asked() -> None:
    assert "client_ip" not in event(payload(ALICE)).metadata
    assert event(payload(ALICE), proxy_client_ip=True).metadata["client_ip"] == "203.0.113.9"


def test_a_request_refused_at_the_gate_is_not_recorded() -> None:
    assert event(payload(ALICE, litellm_no_upstream_llm_call=True)) is None


@pytest.mark.parametrize("mode", ["tag", "skip"])
def test_health_checks_are_tagged_or_skipped(mode: str) -> None:
    health = {"tags": [HEALTH_CHECK], "user_api_key_team_id": HEALTH_CHECK, "user_api_key_alias": HEALTH_CHECK}
    found = event(payload(health), proxy_health_checks=mode)
    if mode == "skip":
        assert found is None
    else:
        assert found.user_profile_id is None and found.metadata["health_check"] is True


def test_llmtally_database_url_wins_over_the_proxys_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://proxy@db/litellm")
    assert Settings().database_url == "postgresql://proxy@db/litellm"
    monkeypatch.setenv("LLMTALLY_DATABASE_URL", "postgresql://usage@db/llmtally")
    assert Settings().database_url == "postgresql://usage@db/llmtally"


def test_a_proxied_response_is_named_by_the_provider_s_id_never_the_client_s() -> None:
    forging = {**ALICE, "requester_metadata": {"response_id": "resp_someone_elses", "feature": "search"}}
    kwargs = payload(forging, call_type="aresponses")
    made = proxy_event(kwargs, {"id": "resp_alices", "object": "response"}, None, None, "success", Settings())
    assert made is not None and made.metadata["response_id"] == "resp_alices"
    chat = proxy_event(
        payload(forging), {"id": "chatcmpl-1", "object": "chat.completion"}, None, None, "success", Settings()
    )
    assert chat is not None and "response_id" not in chat.metadata and chat.metadata["feature"] == "search"


def test_a_stored_response_retrieved_through_the_proxy_is_not_recorded() -> None:
    retrieved = {"id": "resp_alices", "object": "response", "usage": {"input_tokens": 47, "output_tokens": 19}}
    assert event(payload(ALICE, call_type="aget_responses")) is None
    assert proxy_event(payload(ALICE, call_type="aget_responses"), retrieved, None, None, "success", Settings()) is None
