"""The offline demo: simulated users chat through real ``litellm.acompletion`` calls (mock responses)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from llmtally.integrations.litellm import calls
from llmtally.ledger.ledger import Ledger

UNPRICED_MODEL = "openai/acme-internal-llm"


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    email: str
    full_name: str
    provider: str


DEMO_USERS = (
    DemoUser("google_117195204714065447709", "ada@example.com", "Ada Lovelace", "google"),
    DemoUser("github_583231", "grace@example.com", "Grace Hopper", "github"),
    DemoUser("azure-ad_5f0c2a1e-33b8-4d7e-9b4c-8e2d6a7f1c90", "alan@example.com", "Alan Turing", "azure-ad"),
    DemoUser("okta_00u1abcd2EFGH3ijk4l5", "katherine@example.com", "Katherine Johnson", "okta"),
)

PROMPTS = (
    "Summarise the meeting notes in three bullet points.",
    "Write a haiku about PostgreSQL triggers.",
    "Explain what a statement-level trigger is.",
    "Translate 'good morning' into French and German.",
)


def _reply(user: DemoUser, turn: int) -> str:
    words = ["llmtally", "records", "this", "call", "for", user.full_name, "turn", str(turn)]
    return " ".join(words * (2 + len(user.full_name) % 3 + turn))


@dataclass
class DemoResult:
    calls: int = 0
    failures: int = 0
    cancelled: int = 0


async def _chat(ledger: Ledger, user: DemoUser, index: int, result: DemoResult) -> None:
    session_id = f"demo-session-{uuid.uuid4().hex[:8]}"
    await ledger.upsert_user(user.user_id, email=user.email, full_name=user.full_name, provider=user.provider)
    await ledger.link_session(session_id, user.user_id)
    meta = {"user_profile_id": user.user_id, "session_id": session_id}
    for turn, prompt in enumerate(PROMPTS[: 2 + index % 3]):
        messages = [{"role": "user", "content": prompt}]
        # Non-streamed, attributed through metadata.
        await calls.acompletion(
            model="gpt-4o-mini", messages=messages, user=user.user_id, metadata=meta, mock_response=_reply(user, turn)
        )
        # Streamed, carrying only the session id: the session map attributes it.
        stream = await calls.acompletion(
            model="anthropic/claude-haiku-4-5",
            messages=messages,
            user=session_id,
            stream=True,
            stream_options={"include_usage": True},
            mock_response=_reply(user, turn + 1),
        )
        async for _ in stream:
            pass
        result.calls += 2
    # A model nobody has priced: recorded with cost NULL and status `unpriced`.
    await calls.acompletion(
        model=UNPRICED_MODEL,
        messages=[{"role": "user", "content": "hello"}],
        user=user.user_id,
        metadata=meta,
        mock_response="Hello from a model with no price.",
    )
    result.calls += 1
    if index % 2 == 1:  # a provider error
        try:
            await calls.acompletion(
                model="gpt-4o",
                messages=[{"role": "user", "content": "too many"}],
                user=user.user_id,
                metadata=meta,
                mock_response=calls.rate_limit_error("demo rate limit", provider="openai", model="gpt-4o"),
            )
        except Exception as exc:
            if calls.provider_error_kind(exc) != "rate_limit":
                raise
            result.failures += 1
            result.calls += 1
    if index % 2 == 0:  # the user presses stop: LiteLLM records nothing, the app records it
        call_id = str(uuid.uuid4())
        messages = [{"role": "user", "content": "Tell me a very long story."}]
        stream = await calls.acompletion(
            model="gpt-4o-mini",
            messages=messages,
            user=user.user_id,
            metadata=meta,
            stream=True,
            litellm_call_id=call_id,
            mock_response=_reply(user, 5),
        )
        partial = ""
        async for chunk in stream:
            partial += chunk.choices[0].delta.content or ""
            if len(partial) > 40:
                break
        ledger.record_cancelled(
            model="gpt-4o-mini",
            messages=messages,
            partial_response=partial,
            litellm_call_id=call_id,
            user_profile_id=user.user_id,
            session_id=session_id,
        )
        result.cancelled += 1
        result.calls += 1


async def run_demo(ledger: Ledger, users: int = len(DEMO_USERS)) -> DemoResult:
    """Simulate ``users`` people chatting; every call is recorded by ``ledger``."""
    calls.quiet()
    result = DemoResult()
    await asyncio.gather(*(_chat(ledger, u, i, result) for i, u in enumerate(DEMO_USERS[:users])))
    await ledger.flush()
    return result
