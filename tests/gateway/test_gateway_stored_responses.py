"""GET and DELETE /v1/responses/{id} with the real openai SDK: a key reaches only the responses of its own
user, at the deployment that made them (the local upstream stores them), and nothing is billed for it."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import openai
import pytest

from llmtally.api_tokens import create_token, revoke_token, shown_prefix
from llmtally.domain.events import UsageEvent
from tests.gateway.conftest import Caller
from tests.support.gateway import RunningGateway
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, Billed, Upstream

pytestmark = [
    # LiteLLM's logging of a streamed response dumps a usage dict where its model expects ResponseAPIUsage.
    pytest.mark.filterwarnings(r"ignore:Pydantic serializer warnings[\s\S]*ResponseAPIUsage:UserWarning"),
]


def sdk(gateway: RunningGateway, caller: Caller) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=caller.token, max_retries=0)


def new_caller(gateway: RunningGateway) -> Caller:
    user_id = f"password_{uuid.uuid4().hex[:12]}"
    token, _ = create_token(gateway.db, user_id, name="another user", create_user=True)
    return Caller(user_id, token)


def create(gateway: RunningGateway, caller: Caller, upstream: Upstream, stream: bool = False) -> tuple[str, Billed]:
    """A response made through the gateway: its id as the client got it, and the upstream's bill of it."""
    asked = len(upstream.billed)
    with sdk(gateway, caller) as client:
        if stream:
            events = list(client.responses.create(model="gpt-4o-mini", input="Say something", stream=True))
            assert events[-1].type == "response.completed"
            response_id = events[0].response.id  # response.created names it
        else:
            response_id = client.responses.create(model="gpt-4o-mini", input="Say something").id
    [bill] = [b for b in upstream.billed[asked:] if b.endpoint == "responses"]
    return response_id, bill


def all_calls(gateway: RunningGateway) -> int:
    row = gateway.db.fetch_one("select count(*) as n from request_logs")
    assert row is not None
    return int(row["n"])


def not_found(exc: pytest.ExceptionInfo[openai.NotFoundError]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict) and body["code"] == "response_not_found" and body["param"] == "response_id", body
    return body


@pytest.mark.parametrize("stream", [False, True])
def test_a_response_is_retrieved_then_deleted_at_the_deployment_that_made_it_and_nothing_is_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream, stream: bool
) -> None:
    response_id, bill = create(gateway, caller, upstream, stream)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert row["metadata"]["response_id"] == response_id  # what the owner is found by
    calls = all_calls(gateway)
    with sdk(gateway, caller) as client:
        got = client.responses.retrieve(response_id)
        assert (got.id, got.output_text, got.status) == (response_id, REPLY, "completed")
        assert got.usage is not None and (got.usage.input_tokens, got.usage.output_tokens) == (47, 19)
        deleted = client.responses.with_raw_response.delete(response_id)
        assert deleted.http_request.method == "DELETE"
        assert deleted.http_response.json() == {"id": response_id, "object": "response", "deleted": True}
        with pytest.raises(openai.NotFoundError) as gone:
            client.responses.retrieve(response_id)
    assert "the provider has no response" in not_found(gone)["message"]
    assert [(lookup.method, lookup.behaviour) for lookup in upstream.lookups_of(bill.id)] == [
        ("GET", "ok"),
        ("DELETE", "ok"),
        ("GET", "ok"),
    ]
    # The retrievals and the deletion are not recorded (LiteLLM reports the stored usage again): a call
    # made after them is the only new row, and the user's counters are the one billed response's.
    create(gateway, caller, upstream)
    gateway.wait_for_rows(caller.user_id, 2)
    assert all_calls(gateway) == calls + 1
    profile = gateway.db.fetch_one("select tokens_used from user_profiles where user_id = %s", (caller.user_id,))
    assert profile == {"tokens_used": 2 * (PROMPT_TOKENS + COMPLETION_TOKENS)}
    assert gateway.reservations(caller.user_id) == 0
    assert_counters_match_ledger(gateway.db)


def test_another_users_key_gets_404_for_the_id_and_the_upstream_is_not_asked(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    response_id, bill = create(gateway, caller, upstream)
    gateway.wait_for_rows(caller.user_id, 1)
    other = new_caller(gateway)
    with sdk(gateway, other) as client:
        with pytest.raises(openai.NotFoundError) as theirs:
            client.responses.retrieve(response_id)
        with pytest.raises(openai.NotFoundError) as deleting:
            client.responses.delete(response_id)
        with pytest.raises(openai.NotFoundError) as unknown:
            client.responses.retrieve("resp_" + base64.b64encode(b"litellm:made up").decode())
        with pytest.raises(openai.NotFoundError) as slashed:  # base64 has "/": sent as %2F
            client.responses.retrieve("resp_bGl0/ZWxs+bTo=")
    # the answer for another user's response is the answer for an id nobody made: nothing is revealed
    unknown_message = not_found(unknown)["message"].replace(unknown.value.request.url.path.rsplit("/", 1)[1], "ID")
    assert not_found(theirs)["message"].replace(response_id, "ID") == unknown_message
    assert not_found(deleting)["message"].replace(response_id, "ID") == unknown_message
    assert "resp_bGl0/ZWxs+bTo=" in not_found(slashed)["message"]
    assert upstream.lookups_of(bill.id) == []
    # another key of the same user reaches it: responses belong to the user, not to one key
    token, _ = create_token(gateway.db, caller.user_id, name="second key")
    with sdk(gateway, Caller(caller.user_id, token)) as client:
        assert client.responses.retrieve(response_id).output_text == REPLY


def test_a_team_key_reaches_the_team_s_responses_and_a_member_s_own_key_does_not(
    gateway: RunningGateway, upstream: Upstream
) -> None:
    from llmtally import teams

    team = teams.create_team(gateway.db, f"t{uuid.uuid4().hex[:10]}")
    member = new_caller(gateway)
    teams.add_member(gateway.db, team, member.user_id)
    first, _ = create_token(gateway.db, team, name="team app", end_users=True)
    second, _ = create_token(gateway.db, team, name="team script")
    response_id, _ = create(gateway, Caller(team, first), upstream)
    gateway.wait_for_rows(team, 1)
    with sdk(gateway, Caller(team, second)) as client:
        assert client.responses.retrieve(response_id).id == response_id
    with sdk(gateway, member) as client, pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response_id)


def test_a_response_whose_content_was_not_kept_is_still_its_users(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    response_id, _ = create(gateway, caller, upstream)
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    # as LLMTALLY_CONTENT=none, or retention's clearing of old content, leaves the row
    gateway.db.execute("update request_logs set messages = null, response = null where id = %s", (row["id"],))
    with sdk(gateway, caller) as client:
        assert client.responses.retrieve(response_id).output_text == REPLY
    with sdk(gateway, new_caller(gateway)) as client, pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response_id)


def test_a_revoked_key_and_no_key_are_401(gateway: RunningGateway, caller: Caller, upstream: Upstream) -> None:
    response_id, bill = create(gateway, caller, upstream)
    gateway.wait_for_rows(caller.user_id, 1)
    revoke_token(gateway.db, shown_prefix(caller.token))
    with sdk(gateway, caller) as client:
        with pytest.raises(openai.AuthenticationError) as retrieving:
            client.responses.retrieve(response_id)
        with pytest.raises(openai.AuthenticationError) as deleting:
            client.responses.delete(response_id)
    for refused in (retrieving, deleting):
        assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "invalid_api_key"
    anonymous = httpx.get(f"{gateway.base_url}/responses/{response_id}")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    assert upstream.lookups_of(bill.id) == []


def test_previous_response_id_must_name_a_response_of_the_key_s_user(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    response_id, bill = create(gateway, caller, upstream)
    gateway.wait_for_rows(caller.user_id, 1)
    other = new_caller(gateway)
    asked = len(upstream.billed)
    with sdk(gateway, other) as client, pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="gpt-4o-mini", input="And then?", previous_response_id=response_id)
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "previous_response_not_found"
    assert refused.value.body["param"] == "previous_response_id"
    assert len(upstream.billed) == asked and gateway.reservations(other.user_id) == 0
    with sdk(gateway, caller) as client:
        follow_up = client.responses.create(model="gpt-4o-mini", input="And then?", previous_response_id=response_id)
    assert follow_up.output_text == REPLY
    [chained] = upstream.billed[asked:]
    assert chained.body["previous_response_id"] == bill.id  # LiteLLM sends the provider its own id


def test_a_response_no_provider_stores_is_not_found(gateway: RunningGateway, caller: Caller) -> None:
    with sdk(gateway, caller) as client:
        bridged = client.responses.create(model="llmtally/demo", input="Hello")  # LiteLLM's chat bridge
        gateway.wait_for_rows(caller.user_id, 1)
        with pytest.raises(openai.NotFoundError) as missing:
            client.responses.retrieve(bridged.id)
    not_found(missing)


def test_a_response_of_a_deployment_no_longer_configured_is_not_found(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    gone = "litellm:custom_llm_provider:openai;model_id:0123abcd;response_id:resp-removed"
    response_id = "resp_" + base64.b64encode(gone.encode()).decode()
    # a call recorded before the deployment was removed from the config (or changed: its id is a hash)
    metadata = {"response_id": response_id}
    made = UsageEvent(f"old-{uuid.uuid4()}", "gpt-4o-mini", "success", "openai", caller.user_id, metadata=metadata)
    gateway.runtime.ledger.record(made)
    gateway.wait_for_rows(caller.user_id, 1)
    with sdk(gateway, caller) as client, pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(response_id)
    assert "no longer in the gateway's config" in not_found(missing)["message"]
    assert upstream.lookups_of("resp-removed") == []


def test_include_is_passed_on_and_bad_input_is_400(gateway: RunningGateway, caller: Caller, upstream: Upstream) -> None:
    response_id, bill = create(gateway, caller, upstream)
    gateway.wait_for_rows(caller.user_id, 1)
    with sdk(gateway, caller) as client:
        client.responses.retrieve(response_id, include=["message.output_text.logprobs"])
    [lookup] = upstream.lookups_of(bill.id)
    assert httpx.QueryParams(lookup.query).get_list("include[]") == ["message.output_text.logprobs"]
    url = f"{gateway.base_url}/responses"
    for path, param in (
        (f"{response_id}?stream=true", "stream"),
        (f"{response_id}?" + "&".join(["include[]=x"] * 21), "include"),
        ("r" * 1025, "response_id"),
    ):
        answer = httpx.get(f"{url}/{path}", headers=caller.headers)
        assert answer.status_code == 400 and "Traceback" not in answer.text, answer.text
        assert answer.json()["error"]["param"] == param
    assert len(upstream.lookups_of(bill.id)) == 1


def test_a_response_s_input_items_are_listed_for_its_own_user_only_and_nothing_is_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    response_id, bill = create(gateway, caller, upstream)
    gateway.wait_for_rows(caller.user_id, 1)
    calls = all_calls(gateway)
    with sdk(gateway, caller) as client:
        page = client.responses.input_items.list(response_id, limit=5, order="asc")
    assert [(item.type, item.role) for item in page.data] == [("message", "user")]
    assert [part.text for part in page.data[0].content] == ["Say something"]  # type: ignore[union-attr]
    [lookup] = upstream.lookups_of(bill.id)
    assert lookup.method == "GET items" and {"limit=5", "order=asc"} <= set(lookup.query.split("&"))
    with sdk(gateway, new_caller(gateway)) as client, pytest.raises(openai.NotFoundError) as refused:
        client.responses.input_items.list(response_id)
    not_found(refused)
    bad = httpx.get(f"{gateway.base_url}/responses/{response_id}/input_items?limit=0", headers=caller.headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    assert len(upstream.lookups_of(bill.id)) == 1  # neither the other key nor the bad page reached it
    assert all_calls(gateway) == calls  # a listing is not a call
