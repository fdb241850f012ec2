"""The owner of a stored response (the gateway's GET/DELETE /v1/responses/{id}): the callback names the
response in its call's metadata whatever the content mode, and the lookup, run as the user, finds only
that user's responses, even when the query is given another user's id (row-level security)."""

from __future__ import annotations

from collections.abc import Iterator

import litellm
import pytest

from llmtally import Ledger, Settings
from llmtally.db import Database
from llmtally.db.queries import query
from llmtally.domain.events import UsageEvent
from llmtally.integrations.litellm.router import GatewayRouter, parse_config
from tests.support.upstream import Upstream

pytestmark = [
    pytest.mark.sql,  # the lookup and its policy: on every server
    pytest.mark.filterwarnings(r"ignore:Pydantic serializer warnings[\s\S]*ResponseAPIUsage:UserWarning"),
]

ADA, BOB = "github_ada_responses", "github_bob_responses"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def owned(db: Database, as_user: str, user_id: str, response_id: str) -> bool:
    params = {"user_id": user_id, "response_id": response_id}
    return bool(db.fetch_all_as_user(as_user, query("gateway_owned_response"), params))


@pytest.mark.parametrize("content", ["full", "redacted", "none"])
async def test_a_response_is_its_users_whatever_the_content_mode(
    db_url: str, db: Database, upstream: Upstream, content: str
) -> None:
    litellm.suppress_debug_info = True
    deployment = {"model": "openai/gpt-4o-mini", "api_base": upstream.api_base("ok"), "api_key": "x"}
    router = GatewayRouter(parse_config({"model_list": [{"model_name": "m", "litellm_params": deployment}]}, "test"))
    async with Ledger(db_url, settings=Settings(flush_interval_ms=20, content=content)) as ledger:
        await ledger.upsert_user(ADA)
        response = await router.aresponses(model="m", input="hi", litellm_metadata={"user_profile_id": ADA})
        await ledger.flush()
    [row] = db.fetch_all("select response, metadata from request_logs where user_profile_id = %s", (ADA,))
    assert row["metadata"]["response_id"] == response.id
    stored = {"full": response.id, "redacted": "[SECRET]", "none": None}[content]
    assert (row["response"] or {}).get("id") == stored  # what the content alone would say of the owner
    assert owned(db, ADA, ADA, response.id) and not owned(db, BOB, BOB, response.id)


def test_the_lookup_as_a_user_never_sees_another_users_response(any_db_url: str) -> None:
    with Ledger(any_db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for user in (ADA, BOB):
            ledger.upsert_user_sync(user)
            ledger.record(UsageEvent(f"call-{user}", "m", "success", "openai", user, metadata={"response_id": user}))
        assert ledger.flush_sync(10)
        db = ledger.db
        assert db is not None
        assert owned(db, ADA, ADA, ADA) and owned(db, BOB, BOB, BOB)
        assert not owned(db, ADA, ADA, BOB) and not owned(db, BOB, BOB, ADA)
        # a query given the wrong user (a bug) still reads only the caller's own rows
        assert not owned(db, BOB, ADA, ADA) and not owned(db, ADA, BOB, BOB)
