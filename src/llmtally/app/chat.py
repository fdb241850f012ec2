"""The Chainlit handlers: login, streamed chat through LiteLLM, cancellation, usage panel, thread resume.

Chainlit loads this module by path (see ``server.py``); it reaches the ledger and the database
through :func:`llmtally.app.runtime.get_runtime`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from http.cookies import CookieError, SimpleCookie
from typing import Any

import chainlit as cl
from chainlit.input_widget import InputWidget, Select
from chainlit.oauth_providers import get_configured_oauth_providers
from chainlit.types import CommandDict, ThreadDict
from fastapi import Request, Response

from llmtally.analytics.service import Analytics
from llmtally.app.datalayer import ChatDataLayer
from llmtally.app.identity import Identity, oauth_identity, password_identity
from llmtally.app.runtime import get_runtime
from llmtally.app.usage import budget_markdown, usage_markdown
from llmtally.app.web.auth import cookie_token, session_of
from llmtally.budgeted_calls import BudgetedStream, Budgets
from llmtally.errors import BudgetExceeded, LlmtallyError, RateLimited
from llmtally.integrations.litellm.calls import provider_error_kind
from llmtally.integrations.litellm.demo_provider import DEMO_MODEL
from llmtally.web_sessions import create_session, revoke_session

log = logging.getLogger("llmtally.app")

USAGE_COMMAND: CommandDict = {
    "id": "usage",
    "icon": "chart-column",
    "description": "Show this month's usage",
    "button": True,
    "persistent": False,
    "selected": False,
}


@cl.data_layer
def _data_layer() -> ChatDataLayer:
    return ChatDataLayer(get_runtime().db)


async def _remember_login(identity: Identity) -> cl.User:
    runtime = get_runtime()
    await runtime.ledger.upsert_user(
        identity.user_id, email=identity.email, full_name=identity.full_name, provider=identity.provider
    )
    # Only non-secret facts: this travels in a signed, unencrypted cookie. The verified e-mail is what
    # LLMTALLY_ADMINS e-mails are matched against (web/auth.py); an unverified one is never put here.
    metadata: dict[str, str] = {"provider": identity.provider}
    if identity.verified_email:
        metadata["verified_email"] = identity.verified_email
    # The server-side session that logout and `llmtally users revoke-sessions` end (web_sessions.py).
    session = await asyncio.to_thread(
        create_session, runtime.db, identity.user_id, identity.provider, runtime.app.session_lifetime
    )
    metadata["session"] = session.id
    return cl.User(identifier=identity.user_id, display_name=identity.full_name or identity.user_id, metadata=metadata)


@cl.password_auth_callback
async def password_login(username: str, password: str) -> cl.User | None:
    if not get_runtime().logins.check(username, password):
        return None
    return await _remember_login(password_identity(username))


async def oauth_login(
    provider_id: str,
    token: str,
    raw_user_data: dict[str, Any],
    default_user: cl.User,
    id_token: str | None = None,
) -> cl.User | None:
    identity = oauth_identity(provider_id, raw_user_data, default_user.display_name)
    return None if identity is None else await _remember_login(identity)


@cl.on_logout
async def logout(request: Request, response: Response) -> dict[str, bool]:
    """End the server-side session at once: the cookie stops working even where it was copied."""
    token = cookie_token(request.cookies)
    session = session_of(token) if token else None
    if session is not None and session.session_id is not None:
        await asyncio.to_thread(revoke_session, get_runtime().db, session.session_id, "logout")
    return {"success": True}


if get_configured_oauth_providers():  # Chainlit refuses an OAuth callback with no provider configured
    cl.oauth_callback(oauth_login)


def _user_id() -> str:
    user = cl.user_session.get("user")
    assert user is not None, "login is required"
    return str(user.identifier)


def _session_id() -> str:
    """The id this chat's calls carry in request_logs.session_id: made by the server, never the client's
    Chainlit ``sessionId`` (which a client chooses, and could choose to be another user's)."""
    session_id = cl.user_session.get("llmtally_session")
    if not session_id:
        session_id = f"chat_{uuid.uuid4()}"
        cl.user_session.set("llmtally_session", session_id)
    return str(session_id)


async def _start_session(model: str) -> None:
    runtime = get_runtime()
    await runtime.ledger.link_session(_session_id(), _user_id())
    cl.user_session.set("model", model)
    choices = [m.model for m in runtime.models]
    picker: list[InputWidget] = [
        Select(id="model", label="Model", values=choices, initial_index=choices.index(model) if model in choices else 0)
    ]
    await cl.ChatSettings(picker).send()
    await cl.context.emitter.set_commands([USAGE_COMMAND])
    await _show_usage()


@cl.on_chat_start
async def on_chat_start() -> None:
    cl.user_session.set("history", [])
    await _start_session(DEMO_MODEL)


@cl.on_chat_resume
async def on_chat_resume(thread: ThreadDict) -> None:
    history: list[dict[str, str]] = []
    for step in thread.get("steps") or []:
        if step.get("type") == "user_message" and step.get("output"):
            history.append({"role": "user", "content": step["output"]})
        elif (
            step.get("type") == "assistant_message"
            and step.get("output")
            and history
            and step.get("name") != "llmtally"
        ):
            history.append({"role": "assistant", "content": step["output"]})
    cl.user_session.set("history", history)
    model = (thread.get("metadata") or {}).get("llmtally_model") or DEMO_MODEL
    await _start_session(model if model in {m.model for m in get_runtime().models} else DEMO_MODEL)


@cl.on_settings_update
async def on_settings_update(settings: dict[str, Any]) -> None:
    if settings.get("model") in {m.model for m in get_runtime().models}:
        cl.user_session.set("model", settings["model"])


def _narrow_screen() -> bool:
    """Whether the chat connected from a narrow screen (marked by static/chat.js in a cookie)."""
    cookies = SimpleCookie()
    try:
        cookies.load(str(cl.context.session.environ.get("HTTP_COOKIE", "")))
    except CookieError:
        return False
    mark = cookies.get("llmtally_narrow")
    return mark is not None and mark.value == "1"


async def _show_usage(send_message: bool = False) -> None:
    runtime = get_runtime()
    user_id = _user_id()
    try:
        # Read as the user: row-level security guards this even if the query had a bug.
        text = await asyncio.to_thread(usage_markdown, Analytics.for_user(runtime.db, user_id), user_id)
        budget = await asyncio.to_thread(budget_markdown, runtime.db, user_id)
        if budget:
            text = f"{text}\n\n{budget}"
    except LlmtallyError as exc:
        log.error("usage panel: %s", exc)
        text = "Usage is unavailable right now."
    if not _narrow_screen():  # on a phone the panel would cover the chat: /usage shows it instead
        await cl.ElementSidebar.set_title("Your usage")
        await cl.ElementSidebar.set_elements(
            [cl.Text(name="usage", content=text, display="side")], key=str(uuid.uuid4())
        )
    if send_message:
        await cl.Message(content=text, author="llmtally").send()


_BUDGETS: dict[int, Budgets] = {}  # one per running app (keyed by its ledger)


def _budgets() -> Budgets:
    runtime = get_runtime()
    budgets = _BUDGETS.get(id(runtime.ledger))
    if budgets is None or budgets.ledger is not runtime.ledger:
        budgets = _BUDGETS[id(runtime.ledger)] = Budgets(runtime.ledger, db=runtime.db)
    return budgets


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def refusal_message(exc: BudgetExceeded | RateLimited) -> str:
    """What the person chatting reads when a budget or a rate limit refuses the call."""
    if isinstance(exc, RateLimited):
        if exc.retry_after is None:
            return "This message is larger than your per-minute token allowance. Please send a shorter one."
        return f"You are sending messages too quickly. Please try again in {max(1, round(exc.retry_after))} seconds."
    if exc.unpriced_model is not None:
        return f"{exc.unpriced_model} has no price configured and your budget is in USD. Ask your administrator."

    def amount(value: object) -> str:
        return f"{value:,} tokens" if exc.unit == "tokens" else f"${value:f}"

    remaining = max(exc.limit - exc.spent - exc.reserved, 0)  # type: ignore[operator]
    held = f"; {amount(exc.reserved)} held for replies in progress" if exc.reserved else ""
    resets = (
        "It does not reset (lifetime budget)."
        if not isinstance(exc.resets_at, dt.datetime)
        else f"It resets on {_when(exc.resets_at)}."
    )
    worst = (
        f"This reply could cost up to {amount(exc.requested)} (the longest answer the model may give)"
        if exc.requested is not None
        else "This reply's worst case does not fit"
    )
    return (
        f"{worst}, and your {exc.period} budget of {amount(exc.limit)} has {amount(remaining)} left"
        f" (spent {amount(exc.spent)}{held}). {resets} A shorter message or a smaller model may fit."
    )


def friendly_error(exc: Exception, model: str) -> str:
    """One short sentence for the person chatting; the full error is in the ledger."""
    kind = provider_error_kind(exc)
    if kind == "authentication":
        return f"The provider rejected the API key for {model}. Ask your administrator to check it."
    if kind == "rate_limit":
        return f"{model} is rate limited right now. Please try again in a minute."
    if kind == "timeout":
        return f"{model} took too long to answer. Please try again."
    if kind == "bad_request":
        return f"{model} could not take this request ({type(exc).__name__})."
    return f"{model} is unavailable right now ({type(exc).__name__}). Please try again later."


@cl.on_message
async def on_message(message: cl.Message) -> None:
    if message.command == "usage" or message.content.strip() == "/usage":
        await _show_usage(send_message=True)
        return
    runtime = get_runtime()
    user_id = _user_id()
    session_id = _session_id()
    thread_id = cl.context.session.thread_id
    model = str(cl.user_session.get("model") or DEMO_MODEL)
    history: list[dict[str, str]] = list(cl.user_session.get("history") or [])
    history.append({"role": "user", "content": message.content})
    call_id = "unreserved"
    produced: list[str] = []
    reply = cl.Message(content="")
    stream: BudgetedStream | None = None
    try:
        try:
            stream = await _budgets().acompletion(
                user_id=user_id,
                model=model,
                messages=history,
                stream=True,
                stream_options={"include_usage": True},
                session_id=session_id,
                metadata={"thread_id": thread_id},
            )
        except (BudgetExceeded, RateLimited) as refused:
            log.info("chat call refused for %s: %s", user_id, refused)
            history.pop()
            cl.user_session.set("history", history)
            await cl.Message(content=refusal_message(refused), author="llmtally").send()
            await _show_usage()
            return
        call_id = stream.litellm_call_id
        async for chunk in stream:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                produced.append(delta)
                await reply.stream_token(delta)
        await reply.send()
        history.append({"role": "assistant", "content": "".join(produced)})
    except asyncio.CancelledError:
        # Stop button, closed tab or lost connection: LiteLLM records nothing for these. (Cancelled
        # before the stream began, the wrapper recorded it already.)
        if stream is not None:
            stream.record_cancelled("stopped")
        if produced:
            history.append({"role": "assistant", "content": "".join(produced)})
        cl.user_session.set("history", history)
        _AFTER_STOP.add(task := asyncio.get_running_loop().create_task(_refresh_after_stop()))
        task.add_done_callback(_AFTER_STOP.discard)
        raise
    except Exception as exc:  # a provider error: LiteLLM's failure event records it
        log.warning("chat call %s failed: %s", call_id, type(exc).__name__)
        history.pop()
        await cl.Message(content=friendly_error(exc, model), author="llmtally").send()
    cl.user_session.set("history", history)
    if thread_id and cl.context.session.thread_id:
        await _remember_model(thread_id, model)
    await runtime.ledger.flush(timeout=5)
    await _deliver_budget_alerts()
    await _show_usage()


_AFTER_STOP: set[asyncio.Task[None]] = set()  # held until done (the loop keeps only weak references)


async def _refresh_after_stop() -> None:
    """After Stop, the panel shows the cancelled call too (once the ledger has written it)."""
    try:
        await get_runtime().ledger.flush(timeout=5)
        await _show_usage()
    except Exception as exc:  # the tab may be gone (a closed tab also cancels): nothing to refresh
        log.info("usage panel not refreshed after a stop: %s", type(exc).__name__)


async def _deliver_budget_alerts() -> None:
    try:
        await _budgets().deliver_alerts()
    except LlmtallyError as exc:
        log.error("budget alerts: %s", exc)


async def _remember_model(thread_id: str, model: str) -> None:
    data_layer = ChatDataLayer(get_runtime().db)
    try:
        await data_layer.update_thread(thread_id, metadata={"llmtally_model": model})
    except LlmtallyError as exc:
        log.error("could not save the thread's model: %s", exc)


@cl.on_chat_end
async def on_chat_end() -> None:
    """The tab closed or the connection dropped: stop the reply in flight (recorded as cancelled)."""
    task = cl.context.session.current_task
    if task is not None and not task.done():
        task.cancel()
