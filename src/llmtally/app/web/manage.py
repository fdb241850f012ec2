"""Administration in the pages: budgets and rate limits, prices, API tokens, users, and the audit log.

Each page is a GET that shows the current state with forms, and a POST to the same path whose
``action`` field says what to do; the POST answers with the page again and a sentence saying what
was done (200) or what is wrong with the form (400, the form's values kept). A new API token is shown
in that answer only: never in a URL, a cookie or the log.

Every POST is an administrator's, carries the CSRF token of their login session (``Viewer.csrf_token``)
and passes the origin check of every state-changing request. Changes run inside
:func:`llmtally.db.acting_as` (``web:USER_ID``), so the audit log's triggers record who made them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from llmtally import api_tokens, budgets, prices, privacy
from llmtally.analytics.service import Analytics
from llmtally.app.web.auth import NotAuthenticated, Viewer, identify
from llmtally.app.web.pages import LOGIN_PATH, budget_bar, render
from llmtally.app.web.state import WebState
from llmtally.audit import audit_entries
from llmtally.db import acting_as
from llmtally.errors import LlmtallyError, UserInputError
from llmtally.web_sessions import revoke_user_sessions
from llmtally.wording import plural

PAGES = {
    "/admin/budgets": "Budgets and rate limits",
    "/admin/prices": "Prices",
    "/admin/tokens": "API tokens",
    "/admin/users": "Users",
    "/admin/audit": "Audit log",
}
_DEFAULT = "default"  # the user field's value for the default budget or limit
_AUDIT_PAGE = 100
_USERS_SHOWN = 500

Form = dict[str, str]
Action = Callable[[WebState, Viewer, Form], "Done"]


class Done:
    """What an action did: the sentence shown, and what else the page shows once (a new token)."""

    def __init__(self, notice: str, **shown: Any) -> None:
        self.notice = notice
        self.shown = shown


# -- reading a form ------------------------------------------------------------------------------------
def _text(form: Form, name: str, *, required: bool = False, label: str | None = None) -> str:
    value = form.get(name, "").strip()
    if required and not value:
        raise UserInputError(f"{label or name} is required")
    return value


def _owner(form: Form) -> str | None:
    """The user a budget or limit is for: None for the default (an empty field or "default")."""
    user = _text(form, "user")
    return None if user in ("", _DEFAULT) else user


def _usd(form: Form, name: str, label: str) -> Decimal | None:
    value = _text(form, name)
    return None if value == "" else prices.parse_price(value, label)


def _who(owner: str | None) -> str:
    return "the default" if owner is None else owner


# -- the actions -------------------------------------------------------------------------------------
def set_budget(state: WebState, _: Viewer, form: Form) -> Done:
    owner = _owner(form)
    budget = budgets.set_budget(
        state.db,
        owner,
        _text(form, "period", required=True),
        limit_usd=budgets.parse_usd(_text(form, "usd") or None, "the USD limit"),
        limit_tokens=budgets.parse_count(_text(form, "tokens") or None, "the token limit"),
        hard=form.get("hard") == "on",
        thresholds=budgets.parse_thresholds(_text(form, "thresholds") or None),
        timezone=_text(form, "timezone") or "UTC",
    )
    return Done(f"Set the {budget.period} budget of {_who(owner)}.")


def delete_budget(state: WebState, _: Viewer, form: Form) -> Done:
    owner, period = _owner(form), _text(form, "period", required=True)
    if not budgets.delete_budget(state.db, owner, period):
        raise UserInputError(f"{_who(owner)} has no {period} budget")
    return Done(f"Deleted the {period} budget of {_who(owner)}.")


def set_limit(state: WebState, _: Viewer, form: Form) -> Done:
    owner = _owner(form)
    rpm = budgets.parse_count(_text(form, "rpm") or None, "requests per minute")
    tpm = budgets.parse_count(_text(form, "tpm") or None, "tokens per minute")
    limit = budgets.set_rate_limit(state.db, owner, rpm=rpm, tpm=tpm)
    requests = "no limit of" if limit.rpm is None else f"{limit.rpm:,}"
    tokens = "no limit of" if limit.tpm is None else f"{limit.tpm:,}"
    return Done(f"Set the rate limit of {_who(owner)}: {requests} requests and {tokens} tokens per minute.")


def delete_limit(state: WebState, _: Viewer, form: Form) -> Done:
    owner = _owner(form)
    if not budgets.delete_rate_limit(state.db, owner):
        raise UserInputError(f"{_who(owner)} has no rate limit of its own")
    return Done(f"Deleted the rate limit of {_who(owner)}.")


def set_price(state: WebState, _: Viewer, form: Form) -> Done:
    model = _text(form, "model", required=True)
    price_in = _usd(form, "input", "the input price")
    price_out = _usd(form, "output", "the output price")
    if price_in is None or price_out is None:
        raise UserInputError("give the input and the output price (USD per million tokens)")
    prices.set_price(
        state.db,
        model,
        input_per_million=price_in,
        output_per_million=price_out,
        cache_read_per_million=_usd(form, "cached_input", "the cached input price"),
        cache_creation_per_million=_usd(form, "cache_write", "the cache write price"),
    )
    changed = prices.reprice(state.db, model) if form.get("reprice") == "on" else None
    repriced = "" if changed is None else f" and repriced {plural(changed, 'stored call')}"
    return Done(f"Set the price of {model}{repriced}.")


def delete_price(state: WebState, _: Viewer, form: Form) -> Done:
    model = _text(form, "model", required=True)
    if not prices.delete_price(state.db, model):
        raise UserInputError(f"{model} has no custom price")
    changed = prices.reprice(state.db, model)
    return Done(f"Deleted the price of {model}; {plural(changed, 'stored call')} repriced from LiteLLM's price map.")


def reprice_all(state: WebState, _: Viewer, form: Form) -> Done:
    changed = prices.reprice(state.db)
    return Done(f"Repriced every model: {plural(changed, 'stored call')} changed.")


def create_token(state: WebState, _: Viewer, form: Form) -> Done:
    user = _text(form, "user", required=True, label="the user id")
    days = _text(form, "days")
    expires = None
    if days:
        count = budgets.parse_count(days, "the days until it expires")
        if not count:
            raise UserInputError("the days until it expires must be 1 or more (empty: never)")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=count)
    token, record = api_tokens.create_token(
        state.db,
        user,
        name=_text(form, "name"),
        expires_at=expires,
        models=api_tokens.parse_models(_text(form, "models")),
        end_users=form.get("end_users") == "on",
    )
    return Done(f"Created token {record.prefix}… for {user}. Copy it now: it is not shown again.", new_token=token)


def revoke_token(state: WebState, _: Viewer, form: Form) -> Done:
    record = api_tokens.revoke_token(state.db, _text(form, "token", required=True, label="the token id"))
    return Done(f"Revoked token {record.prefix}… of {record.user_id}: it is refused from now on.")


def delete_user(state: WebState, viewer: Viewer, form: Form) -> Done:
    user = _text(form, "user", required=True, label="the user id")
    if _text(form, "confirm") != user:
        raise UserInputError(f"type the user id {user} in the box to confirm the deletion")
    if user == viewer.user_id:
        raise UserInputError("you cannot delete your own login while using it")
    privacy.check_deletable(state.db, user)
    report = privacy.delete_user(state.db, user)
    return Done(
        f"Deleted {user}: {plural(report.calls_anonymised, 'call')} kept as anonymous usage,"
        f" {plural(report.threads_deleted, 'chat thread')} removed."
    )


def end_sessions(state: WebState, _: Viewer, form: Form) -> Done:
    user = _text(form, "user", required=True, label="the user id")
    ended = revoke_user_sessions(state.db, user)
    return Done(f"Ended {plural(ended, 'login session')} of {user}.")


ACTIONS: dict[str, dict[str, Action]] = {
    "/admin/budgets": {
        "set_budget": set_budget,
        "delete_budget": delete_budget,
        "set_limit": set_limit,
        "delete_limit": delete_limit,
    },
    "/admin/prices": {"set_price": set_price, "delete_price": delete_price, "reprice": reprice_all},
    "/admin/tokens": {"create": create_token, "revoke": revoke_token},
    "/admin/users": {"delete": delete_user, "end_sessions": end_sessions},
}


# -- what each page shows --------------------------------------------------------------------------------
def budgets_context(state: WebState, _: Request) -> dict[str, Any]:
    rows = budgets.list_budgets(state.db)
    status: dict[int, budgets.BudgetStatus] = {}
    for user in sorted({b.user_profile_id for b in rows if b.user_profile_id is not None}):
        for in_force in budgets.budget_status(state.db, user):
            if in_force.owner == user:
                status[in_force.budget_id] = in_force
    shown = []
    for b in rows:
        s = status.get(b.id)
        bars = []
        if s is not None and s.limit_usd is not None:
            bars.append({"unit": "usd", **budget_bar(s.spent_usd, s.reserved_usd, s.limit_usd)})
        if s is not None and s.limit_tokens is not None:
            bars.append({"unit": "tokens", **budget_bar(s.spent_tokens, s.reserved_tokens, s.limit_tokens)})
        shown.append({"budget": b, "status": s, "bars": bars})
    return {"budgets": shown, "limits": budgets.list_rate_limits(state.db), "periods": budgets.PERIODS}


def prices_context(state: WebState, _: Request) -> dict[str, Any]:
    return {"prices": prices.list_prices(state.db)}


def tokens_context(state: WebState, _: Request) -> dict[str, Any]:
    return {"tokens": api_tokens.list_tokens(state.db)}


def users_context(state: WebState, _: Request) -> dict[str, Any]:
    with Analytics(state.db) as everyone:
        return {"users": everyone.users(_USERS_SHOWN), "users_shown": _USERS_SHOWN}


def audit_context(state: WebState, request: Request) -> dict[str, Any]:
    raw_before = request.query_params.get("before", "")
    who = request.query_params.get("who", "").strip() or None
    if raw_before and not raw_before.isdigit():
        raise UserInputError("before must be an entry number")
    entries = audit_entries(state.db, limit=_AUDIT_PAGE, before=int(raw_before) if raw_before else None, who=who)
    older = entries[-1].id if len(entries) == _AUDIT_PAGE else None
    return {"entries": entries, "who": who or "", "older": older}


CONTEXTS: dict[str, Callable[[WebState, Request], dict[str, Any]]] = {
    "/admin/budgets": budgets_context,
    "/admin/prices": prices_context,
    "/admin/tokens": tokens_context,
    "/admin/users": users_context,
    "/admin/audit": audit_context,
}
TEMPLATES = {
    "/admin/budgets": "manage_budgets.html",
    "/admin/prices": "manage_prices.html",
    "/admin/tokens": "manage_tokens.html",
    "/admin/users": "manage_users.html",
    "/admin/audit": "audit.html",
}


def install_manage(app: FastAPI, state: WebState) -> None:
    """Register the administration pages on ``app`` (before Chainlit's catch-all mount)."""

    def admin(request: Request) -> Viewer | Response:
        try:
            viewer = identify(state, request)
        except NotAuthenticated:
            return RedirectResponse(LOGIN_PATH, status_code=303)
        if not viewer.is_admin:
            return render("forbidden.html", status=403, viewer=viewer, title="Not allowed")
        return viewer

    def page(path: str, request: Request, viewer: Viewer, status: int = 200, **extra: Any) -> Response:
        try:
            context = CONTEXTS[path](state, request)
        except UserInputError as exc:
            context, status, extra = {}, 400, {**extra, "error": str(exc)}
        return render(
            TEMPLATES[path],
            status=status,
            viewer=viewer,
            title=PAGES[path],
            pages=PAGES,
            here=path,
            csrf=viewer.csrf_token,
            **context,
            **extra,
        )

    def act(path: str, request: Request, viewer: Viewer, form: Form) -> Response:
        action = ACTIONS[path].get(form.get("action", ""))
        if action is None:
            return page(path, request, viewer, 400, error="unknown action: reload the page and try again")
        try:
            with acting_as(f"web:{viewer.user_id}"):
                done = action(state, viewer, form)
        except LlmtallyError as exc:
            return page(path, request, viewer, 400, error=str(exc), form=form)
        return page(path, request, viewer, notice=done.notice, **done.shown)

    def change(path: str, request: Request, form: Form) -> Response:
        viewer = admin(request)
        if isinstance(viewer, Response):
            return viewer
        if not viewer.csrf_ok(form.get("csrf")):
            return render(
                "forbidden.html",
                status=403,
                viewer=viewer,
                title="Not allowed",
                reason="This form has expired or did not come from this site's pages: reload the page and try again.",
            )
        return act(path, request, viewer, form)

    def route(path: str) -> None:
        def show(request: Request) -> Response:  # sync: FastAPI runs it in a worker thread
            viewer = admin(request)
            return viewer if isinstance(viewer, Response) else page(path, request, viewer)

        app.add_api_route(path, show, methods=["GET"], include_in_schema=False)
        if path not in ACTIONS:
            return

        async def post(request: Request) -> Response:
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
            return await run_in_threadpool(change, path, request, form)

        app.add_api_route(path, post, methods=["POST"], include_in_schema=False)

    for path in PAGES:
        route(path)
