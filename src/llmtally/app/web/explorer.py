"""The request explorer pages: every call at /admin/requests (administrators), your own at /usage/requests.

The filters are GET parameters, so a filtered view is a URL that can be shared; a bad parameter gives the
page with a one-line message and status 400. /usage/* reads as the viewer under row-level security, so a
call of another user is not found (404) whatever its id.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from llmtally.analytics.explorer import (
    MAX_PAGE,
    PAGE_SIZE,
    SORTS,
    STATUSES,
    ExplorerFilter,
    RequestExplorer,
)
from llmtally.app.web.auth import NotAuthenticated, Viewer, identify
from llmtally.app.web.pages import LOGIN_PATH, render
from llmtally.app.web.state import WebState
from llmtally.errors import UserInputError


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # content parts: [{"type": "text", "text": ...}]
        return "\n".join(_text(v.get("text") if isinstance(v, dict) else v) for v in value)
    return json.dumps(value, indent=2, default=str)


def messages_of(messages: Any) -> list[tuple[str, str]]:
    """A stored request's messages as (role, text), in full."""
    if isinstance(messages, list):
        return [
            (str(m.get("role", "")), _text(m.get("content"))) if isinstance(m, dict) else ("", _text(m))
            for m in messages
        ]
    return [] if messages is None else [("", _text(messages))]


def reply_text(response: Any) -> str:
    """A stored response's reply, in full (a cancelled stream's partial text included)."""
    if isinstance(response, dict):
        choices = response.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message") or choices[0].get("delta") or {}
            if isinstance(message, dict):
                return _text(message.get("content"))
        if isinstance(response.get("partial"), str):
            return str(response["partial"])
    return _text(response)


def _choices(explorer: RequestExplorer, request: Request) -> dict[str, list[str]]:
    """The drop-downs' models and providers: those of the last 90 days, and the one asked for."""
    pairs = explorer.choices()
    models = {m for m, _ in pairs} | {v for v in [request.query_params.get("model", "")[:500]] if v}
    providers = {p for _, p in pairs} | {v for v in [request.query_params.get("provider", "")[:500]] if v}
    return {"models": sorted(models), "providers": sorted(providers)}


def install_explorer(app: FastAPI, state: WebState) -> None:
    """Register /admin/requests[/{id}] and /usage/requests[/{id}] on ``app`` (before Chainlit's mount)."""

    def who(request: Request) -> Viewer | Response:
        try:
            return identify(state, request)
        except NotAuthenticated:
            return RedirectResponse(LOGIN_PATH, status_code=303)

    def explorer_for(viewer: Viewer, admin: bool) -> RequestExplorer:
        return RequestExplorer(state.db, with_content=state.show_content, viewer=None if admin else viewer.user_id)

    def listing(request: Request, viewer: Viewer, admin: bool) -> Response:
        base = "/admin/requests" if admin else "/usage/requests"
        explorer = explorer_for(viewer, admin)
        context: dict[str, Any] = {
            "viewer": viewer,
            "admin_view": admin,
            "title": "Requests" if admin else "Your requests",
            "base": base,
            "show_content": state.show_content,
            "sorts": SORTS,
            "statuses": STATUSES,
            **_choices(explorer, request),
            "page_size": PAGE_SIZE,
            "max_page": MAX_PAGE,
            "values": dict(request.query_params),
        }
        try:
            where = ExplorerFilter.from_params(request.query_params, allow_user=admin)
            page = explorer.page(where)
        except UserInputError as exc:
            return render("requests.html", status=400, error=str(exc), page=None, **context)
        params = where.params()
        context["values"] = {**context["values"], "since": where.since.isoformat() if where.since else ""}

        def link(page_number: int) -> str:
            return base + "?" + urlencode({**params, "page": str(page_number)})

        export = None
        if admin:
            span = {
                "since": where.since.isoformat() if where.since else None,
                "until": (where.until + dt.timedelta(days=1)).isoformat() if where.until else None,
                "user": where.user_id,
                "end_user": where.end_user,
            }
            export = "/api/v1/admin/export?" + urlencode({k: v for k, v in span.items() if v} | {"format": "csv"})
        return render(
            "requests.html",
            error=None,
            page=page,
            where=where,
            previous_link=link(page.page - 1) if page.page > 1 else None,
            next_link=link(page.page + 1) if page.has_next else None,
            export_link=export,
            **context,
        )

    def drill_down(viewer: Viewer, admin: bool, request_id: str) -> Response:
        base = "/admin/requests" if admin else "/usage/requests"
        detail = (
            explorer_for(viewer, admin).detail(int(request_id))
            if request_id.isascii() and request_id.isdigit() and len(request_id) <= 19
            else None
        )
        if detail is None:
            return render(
                "request.html",
                status=404,
                viewer=viewer,
                admin_view=admin,
                title="No such request",
                base=base,
                call=None,
            )
        return render(
            "request.html",
            viewer=viewer,
            admin_view=admin,
            title=f"Request {detail.id}",
            base=base,
            call=detail,
            show_content=state.show_content,
            messages=messages_of(detail.messages),
            reply=reply_text(detail.response),
            metadata=json.dumps(detail.metadata, indent=2, sort_keys=True, default=str),
        )

    @app.get("/admin/requests", include_in_schema=False)
    def admin_requests(request: Request) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        if not viewer.is_admin:
            return render("forbidden.html", status=403, viewer=viewer)
        return listing(request, viewer, admin=True)

    @app.get("/admin/requests/{request_id}", include_in_schema=False)
    def admin_request(request: Request, request_id: str) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        if not viewer.is_admin:
            return render("forbidden.html", status=403, viewer=viewer)
        return drill_down(viewer, True, request_id)

    @app.get("/usage/requests", include_in_schema=False)
    def usage_requests(request: Request) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        return listing(request, viewer, admin=False)

    @app.get("/usage/requests/{request_id}", include_in_schema=False)
    def usage_request(request: Request, request_id: str) -> Response:
        viewer = who(request)
        if isinstance(viewer, Response):
            return viewer
        return drill_down(viewer, False, request_id)
