"""Server-rendered pages: the admin dashboard (/admin), one user (/admin/users/{id}), your usage (/usage).

Pages are Jinja2 templates with autoescaping; data for charts travels as JSON in the page (escaped
by ``tojson``) or is fetched from the JSON API by a small script. Chart.js is bundled under
``static/vendor`` (no CDN: the pages work offline).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from llmtally.analytics.models import MonthlyUsage, RecentRequest, UserAnalytics
from llmtally.analytics.service import Analytics
from llmtally.app.web.auth import NotAuthenticated, Viewer, identify
from llmtally.app.web.state import WebState
from llmtally.budgets import budgets_in_force
from llmtally.errors import UnknownUser
from llmtally.teams import teams_of
from llmtally.wording import money, priced_cost

STATIC = Path(__file__).resolve().parents[1] / "static"
STATIC_PATH = "/llmtally-static"
LOGIN_PATH = "/login"
_SNIPPET = 300

templates = Environment(
    loader=PackageLoader("llmtally.app.web", "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)


def budget_bar(spent: Decimal | int, reserved: Decimal | int, limit: Decimal | int) -> dict[str, Any]:
    """Widths in percent of a bar of a budget's limit: spent, then reserved, never past 100 together;
    ``over`` when what is spent has reached the limit."""
    if not limit:
        return {"spent": 100.0 if spent else 0.0, "reserved": 0.0, "over": bool(spent)}
    spent_pct = min(float(spent) / float(limit) * 100, 100.0)
    reserved_pct = min(float(reserved) / float(limit) * 100, 100.0 - spent_pct)
    return {"spent": round(spent_pct, 1), "reserved": round(reserved_pct, 1), "over": spent >= limit}


def budget_rows(state: WebState, user_id: str, *, as_user: bool) -> list[dict[str, Any]]:
    """The budgets in force for the user, each with its bars: as the user (row-level security) on
    /usage, as the server on the admin's page of that user."""
    rows = budgets_in_force(state.db, user_id, as_user=as_user)
    for row in rows:
        if row["limit_usd"] is not None:
            row["bar_usd"] = budget_bar(row["spent_usd"], row["reserved_usd"], row["limit_usd"])
        if row["limit_tokens"] is not None:
            row["bar_tokens"] = budget_bar(row["spent_tokens"], row["reserved_tokens"], row["limit_tokens"])
    return rows


def team_rows(state: WebState, user_id: str) -> list[dict[str, Any]]:
    """The user's teams (read as the user: row-level security says which) with this month's usage and each
    team's budgets, read as the server once membership is shown."""
    return [{"team": t, "budgets": budget_rows(state, t.team_id, as_user=False)} for t in teams_of(state.db, user_id)]


def _text_of(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}]
        return " ".join(_text_of(v.get("text") if isinstance(v, dict) else v) for v in value)
    return json.dumps(value, default=str)[:_SNIPPET]


def _clip(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def prompt_of(messages: Any) -> str:
    """The last user message of a request's content, clipped."""
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return _clip(_text_of(message.get("content")))
    return _clip(_text_of(messages))


def reply_of(response: Any) -> str:
    """The reply's text in a stored response, clipped. A cancelled stream stores what was streamed
    as ``{"partial": text}``: that text is the reply (the status column says it was cancelled)."""
    if isinstance(response, dict) and set(response) == {"partial"}:
        return _clip(_text_of(response["partial"]))
    if isinstance(response, dict):
        choices = response.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or choices[0].get("delta") or {}
            if isinstance(message, dict):
                return _clip(_text_of(message.get("content")))
    return _clip(_text_of(response))


templates.filters["money"] = money
templates.globals["priced_cost"] = priced_cost
templates.globals["utc"] = dt.UTC
templates.filters["prompt_of"] = prompt_of
templates.filters["reply_of"] = reply_of


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(static=STATIC_PATH, **context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _monthly_chart(months: list[MonthlyUsage]) -> dict[str, Any]:
    ordered = list(reversed(months))
    models = sorted({m for month in ordered for m in month.model_breakdown})
    return {
        "labels": [m.month.strftime("%Y-%m") for m in ordered],
        "series": [
            {
                "label": model,
                "cost": [str(m.model_breakdown[model].cost) if model in m.model_breakdown else "0" for m in ordered],
                "tokens": [m.model_breakdown[model].tokens if model in m.model_breakdown else 0 for m in ordered],
            }
            for model in models
        ],
    }


def _this_month(months: list[MonthlyUsage]) -> MonthlyUsage | None:
    first = dt.datetime.now(dt.UTC).date().replace(day=1)
    return months[0] if months and months[0].month == first else None


def _by_model_rows(months: list[MonthlyUsage]) -> list[dict[str, Any]]:
    rows = []
    for m in months:
        for model, entry in sorted(m.model_breakdown.items(), key=lambda kv: (-kv[1].cost, kv[0])):
            rows.append({"month": m.month, "model": model, "entry": entry})
    return rows


def _user_title(user: UserAnalytics) -> str:
    """A user's page is titled with who they are: name and e-mail when known, the id otherwise."""
    known = [part for part in (user.full_name, user.email) if part]
    if not known:
        return f"User {user.user_id}"
    if len(known) == 2 and known[0] != known[1]:
        return f"{known[0]} <{known[1]}>"
    return known[0]


def install_pages(app: FastAPI, state: WebState) -> None:
    """Register the pages and the static files on ``app`` (before Chainlit's catch-all mount)."""
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="llmtally-static")

    def who(request: Request) -> Viewer | Response:
        try:
            return identify(state, request)
        except NotAuthenticated:
            return RedirectResponse(LOGIN_PATH, status_code=303)

    def forbidden(viewer: Viewer) -> HTMLResponse:
        return render("forbidden.html", status=403, viewer=viewer)

    @app.get("/usage", include_in_schema=False)
    def usage_page(request: Request) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        mine = Analytics.for_user(state.db, viewer.user_id)  # row-level security: only the viewer's rows
        try:
            totals = mine.user_analytics(viewer.user_id)
        except UnknownUser:
            totals = None
        months = mine.user_monthly_usage(viewer.user_id, 12) if totals else []
        recent: list[RecentRequest] = (
            mine.user_recent_requests(viewer.user_id, 20, with_content=state.show_content) if totals else []
        )
        tags = mine.tag_usage() if totals else []  # this month, as the viewer (row-level security)
        return render(
            "usage.html",
            viewer=viewer,
            title="Your usage",
            subject=viewer.user_id,
            totals=totals,
            this_month=_this_month(months),
            months=months,
            by_model=_by_model_rows(months),
            recent=recent,
            tags=tags,
            teams=team_rows(state, viewer.user_id),
            show_content=state.show_content,
            chart=_monthly_chart(months),
            budgets=budget_rows(state, viewer.user_id, as_user=True),
        )

    @app.get("/admin", include_in_schema=False)
    def admin_page(request: Request) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        if not viewer.is_admin:
            return forbidden(viewer)
        return render("admin.html", viewer=viewer, title="llmtally dashboard")

    @app.get("/admin/users/{user_id}", include_in_schema=False)
    def admin_user_page(request: Request, user_id: str) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        if not viewer.is_admin:
            return forbidden(viewer)
        everyone = Analytics(state.db)
        try:
            totals = everyone.user_analytics(user_id)
        except UnknownUser:
            return render("not_found.html", status=404, viewer=viewer, title="Unknown user", subject=user_id)
        months = everyone.user_monthly_usage(user_id, 12)
        return render(
            "usage.html",
            viewer=viewer,
            title=_user_title(totals),
            subject=user_id,
            admin_view=True,
            totals=totals,
            this_month=_this_month(months),
            months=months,
            by_model=_by_model_rows(months),
            recent=everyone.user_recent_requests(user_id, 20, with_content=state.show_content),
            tags=Analytics.for_user(state.db, user_id).tag_usage(),
            teams=team_rows(state, user_id),
            show_content=state.show_content,
            chart=_monthly_chart(months),
            budgets=budget_rows(state, user_id, as_user=False),
        )
