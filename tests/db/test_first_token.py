"""Time to first token, measured on real streams from a local upstream whose first chunk comes late: stored on
the attempt and on the call, absent (null, not 0) for calls that were not streamed, kept for a stream the
client left, and reported by model and by deployment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import litellm
import pytest

from llmtally import Analytics, Budgets, Ledger, Settings
from llmtally.db import Database
from tests.support.upstream import FIRST_CHUNK_DELAY_S, Upstream

USER = "github_ttft"
MESSAGES = [{"role": "user", "content": "Stream me something."}]
DELAY_MS = int(FIRST_CHUNK_DELAY_S * 1000)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[Ledger]:
    litellm.suppress_debug_info = True
    async with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as started:
        await started.upsert_user(USER)
        yield started


def deployment(name: str, up: Upstream, behaviour: str) -> dict[str, Any]:
    params = {"model": "openai/gpt-4o-mini", "api_base": up.api_base(behaviour), "api_key": "x"}
    return {"model_name": name, "litellm_params": params}


async def test_a_late_first_chunk_is_the_stream_s_time_to_first_token(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    params = {"model": "openai/gpt-4o-mini", "api_base": upstream.api_base("late"), "api_key": "x"}
    stream = await litellm.acompletion(
        **params, messages=MESSAGES, stream=True, stream_options={"include_usage": True},
        metadata={"user_profile_id": USER},
    )  # fmt: skip
    async for _chunk in stream:
        pass
    await litellm.acompletion(**params, messages=MESSAGES, metadata={"user_profile_id": USER})  # not streamed
    assert await ledger.flush()
    streamed, whole = db.fetch_all("select stream, latency_ms, first_token_ms from request_logs order by created_at")
    assert streamed["stream"] and not whole["stream"]
    # the upstream waited DELAY_MS before its first chunk, then sent the rest at once
    assert DELAY_MS <= streamed["first_token_ms"] <= streamed["latency_ms"] < DELAY_MS + 5_000
    assert whole["first_token_ms"] is None and whole["latency_ms"] is not None  # a whole answer has no first chunk
    attempts = db.fetch_all("select first_token_ms from request_attempts where stream")
    assert [a["first_token_ms"] for a in attempts] == [streamed["first_token_ms"]]
    [mini] = Analytics(db).latency_percentiles().by_model
    assert (mini.requests, mini.streamed) == (2, 1)
    assert mini.first_token_p50_ms == mini.first_token_p95_ms == streamed["first_token_ms"]


async def test_after_a_fallback_the_call_has_the_answering_deployment_s_first_token(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    router = litellm.Router(
        model_list=[deployment("primary", upstream, "fail500"), deployment("backup", upstream, "late")],
        num_retries=0,
        fallbacks=[{"primary": ["backup"]}],
    )
    meta = {"user_profile_id": USER}
    stream = await router.acompletion(model="primary", messages=MESSAGES, stream=True, metadata=meta)
    async for _chunk in stream:
        pass
    assert await ledger.flush()
    [call] = db.fetch_all("select status, attempt_count, first_token_ms from request_logs")
    assert (call["status"], call["attempt_count"]) == ("success", 2)
    attempts = {
        a["model_group"]: a for a in db.fetch_all("select model_group, status, first_token_ms from request_attempts")
    }
    assert attempts["primary"]["status"] == "failure" and attempts["primary"]["first_token_ms"] is None
    assert attempts["backup"]["first_token_ms"] == call["first_token_ms"] >= DELAY_MS
    by_group = {d.model_group: d for d in Analytics(db).latency_percentiles().by_deployment}
    assert (by_group["primary"].streamed, by_group["primary"].first_token_p50_ms) == (0, None)
    assert (by_group["backup"].streamed, by_group["backup"].first_token_p50_ms) == (1, call["first_token_ms"])


async def test_a_stream_the_client_left_keeps_the_time_of_its_first_chunk(
    ledger: Ledger, db: Database, upstream: Upstream
) -> None:
    budgets = Budgets(ledger)
    stream = await budgets.acompletion(
        user_id=USER, model="openai/gpt-4o-mini", messages=MESSAGES, stream=True,
        api_base=upstream.api_base("slow"), api_key="x",
    )  # fmt: skip
    received = 0
    async for _chunk in stream:  # chunks 0.2 s apart: leave after three
        received += 1
        if received == 3:
            break
    await stream.aclose()
    assert await ledger.flush()
    [call] = db.fetch_all("select status, latency_ms, first_token_ms from request_logs")
    assert call["status"] == "cancelled"
    # the first chunk came at once, the client left 0.4 s later
    assert call["first_token_ms"] is not None and call["first_token_ms"] + 300 <= call["latency_ms"]
