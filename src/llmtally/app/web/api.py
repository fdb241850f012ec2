"""The JSON API under /api/v1: a user's own usage (read under row-level security) and admin views.

Authentication: the chat's session cookie, or ``Authorization: Bearer lt_...`` (``llmtally tokens``).
Errors are JSON ``{"error": message, "status": code}``: 400 bad parameter, 401 not authenticated,
403 not an administrator, 404 unknown user or path; never a bare 500.
"""

import datetime as dt
import logging
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmtally.analytics.models import (
    DailyModelUsage,
    DailyTotals,
    DeploymentErrorRate,
    FailureRecord,
    LatencyHistogram,
    LatencyPercentiles,
    ModelUsage,
    MonthlyUsage,
    PeriodComparison,
    RecentRequest,
    RefusalSummary,
    RequestHistory,
    TagUsage,
    UnpricedModel,
    UserAnalytics,
    UserSummary,
    UserUsage,
)
from llmtally.analytics.service import Analytics
from llmtally.app.web.api_docs import install_api_docs
from llmtally.app.web.auth import NotAuthenticated, Viewer, identify
from llmtally.app.web.state import WebState
from llmtally.errors import DatabaseUnreachable, LlmtallyError, UnknownUser, UserInputError
from llmtally.export import CONTENT_TYPES, ExportFilter, export_chunks
from llmtally.teams import Team, TeamUsage, list_teams, teams_of

log = logging.getLogger("llmtally.app")


class ErrorBody(BaseModel):
    error: str
    status: int


class UserDetail(BaseModel):
    """One user, as an administrator sees them."""

    model_config = ConfigDict(frozen=True)

    analytics: UserAnalytics
    monthly: list[MonthlyUsage]
    recent: list[RecentRequest]


ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "A parameter is invalid."},
    401: {"model": ErrorBody, "description": "Not authenticated: no valid session cookie or API token."},
    403: {"model": ErrorBody, "description": "Authenticated, but not an administrator."},
    404: {"model": ErrorBody, "description": "No such user or path."},
}

_bearer = HTTPBearer(auto_error=False, description="An API token from `llmtally tokens create` (lt_...).")
Since = Annotated[dt.date | None, Query(description="First UTC day (inclusive). Default: the 1st of this month.")]
Until = Annotated[dt.date | None, Query(description="UTC day after the last one (exclusive). Default: tomorrow.")]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _text(value: str | None, name: str) -> str | None:
    if value is not None and ("\x00" in value or len(value) > 500):
        raise UserInputError(f"{name} must be at most 500 characters, without NUL")
    return value


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header"))
        return error(400, f"invalid {where or 'request'}: {first.get('msg', 'bad value')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        response = error(exc.status_code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(NotAuthenticated)
    async def _unauthenticated(_: Request, exc: NotAuthenticated) -> JSONResponse:
        response = error(401, exc.reason)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(LlmtallyError)
    async def _llmtally(_: Request, exc: LlmtallyError) -> JSONResponse:
        if isinstance(exc, UnknownUser):
            return error(404, str(exc))
        if isinstance(exc, UserInputError):
            return error(400, str(exc))
        log.error("API: %s", exc)
        return error(503 if isinstance(exc, DatabaseUnreachable) else 500, "the database could not answer")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("API: unexpected error")
        return error(500, "internal error")


def build_api(state: WebState) -> FastAPI:
    api = FastAPI(
        title="llmtally API",
        version="1",
        summary="Usage of LLM calls recorded by llmtally: your own, and (administrators) everyone's.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        responses=ERRORS,
    )
    install_error_handlers(api)
    install_api_docs(api)

    def viewer(request: Request, _: Annotated[object, Depends(_bearer)] = None) -> Viewer:
        return identify(state, request)

    def admin(who: Annotated[Viewer, Depends(viewer)]) -> Viewer:
        if not who.is_admin:
            raise StarletteHTTPException(403, "administrators only (LLMTALLY_ADMINS)")
        return who

    Me = Annotated[Viewer, Depends(viewer)]
    Admin = Annotated[Viewer, Depends(admin)]

    def mine(who: Viewer) -> Analytics:
        return Analytics.for_user(state.db, who.user_id)  # row-level security: only the viewer's rows

    # -- the viewer's own usage ----------------------------------------------------------------------
    @api.get("/usage/me", response_model=UserAnalytics, tags=["usage"])
    def usage_me(who: Me) -> UserAnalytics:
        """Your lifetime requests, tokens, cost and models."""
        return mine(who).user_analytics(who.user_id)

    @api.get("/usage/me/history", response_model=RequestHistory, tags=["usage"])
    def usage_history(
        who: Me,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        before: Annotated[str | None, Query(description="next_before of the previous page.")] = None,
    ) -> RequestHistory:
        """Your requests, newest first, one page at a time."""
        return mine(who).user_request_history(who.user_id, limit, _text(before, "before"))

    @api.get("/usage/me/monthly", response_model=list[MonthlyUsage], tags=["usage"])
    def usage_monthly(who: Me, months: Annotated[int, Query(ge=1, le=120)] = 12) -> list[MonthlyUsage]:
        """Your usage per calendar month (UTC), newest first, by model and provider."""
        return mine(who).user_monthly_usage(who.user_id, months)

    @api.get("/usage/me/recent", response_model=list[RecentRequest], tags=["usage"])
    def usage_recent(who: Me, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[RecentRequest]:
        """Your newest requests, with their content when the server stores it (LLMTALLY_CONTENT=full)."""
        return mine(who).user_recent_requests(who.user_id, limit, with_content=state.show_content)

    @api.get("/usage/me/tags", response_model=list[TagUsage], tags=["usage"])
    def usage_tags(who: Me, since: Since = None, until: Until = None) -> list[TagUsage]:
        """Your requests, tokens and cost by tag (each call's ``metadata.tags``) over the period (this month)."""
        return mine(who).tag_usage(since, until)

    @api.get("/usage/me/teams", response_model=list[TeamUsage], tags=["usage"])
    def usage_teams(who: Me) -> list[TeamUsage]:
        """Your teams and their usage this month (UTC): calls through a team's keys are billed to the team."""
        return teams_of(state.db, who.user_id)

    # -- administrators ------------------------------------------------------------------------------
    def everyone() -> Analytics:
        return Analytics(state.db)

    @api.get("/admin/users", response_model=list[UserSummary], tags=["admin"])
    def admin_users(_: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[UserSummary]:
        """Every user with lifetime counters, highest cost first."""
        return everyone().users(limit)

    @api.get("/admin/users/{user_id}", response_model=UserDetail, tags=["admin"])
    def admin_user(
        _: Admin,
        user_id: Annotated[str, Path(max_length=500)],
        months: Annotated[int, Query(ge=1, le=120)] = 12,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> UserDetail:
        """One user's totals, monthly breakdown and recent requests."""
        uid = _text(user_id, "user_id") or ""
        a = everyone()
        return UserDetail(
            analytics=a.user_analytics(uid),
            monthly=a.user_monthly_usage(uid, months),
            recent=a.user_recent_requests(uid, limit, with_content=state.show_content),
        )

    @api.get("/admin/models", response_model=list[ModelUsage], tags=["admin"])
    def admin_models(_: Admin, since: Since = None, until: Until = None) -> list[ModelUsage]:
        """Totals by model and provider over a period."""
        return everyone().totals_by_model(since, until)

    @api.get("/admin/deployments", response_model=list[DeploymentErrorRate], tags=["admin"])
    def admin_deployments(_: Admin, since: Since = None, until: Until = None) -> list[DeploymentErrorRate]:
        """Attempts and error rate by deployment (model group and API host), retries and fallbacks included."""
        return everyone().error_rate_by_deployment(since, until)

    @api.get("/admin/daily", response_model=list[DailyTotals], tags=["admin"])
    def admin_daily(_: Admin, since: Since = None, until: Until = None) -> list[DailyTotals]:
        """Totals per UTC day over a period."""
        return everyone().totals_by_day(since, until)

    @api.get("/admin/summary", response_model=PeriodComparison, tags=["admin"])
    def admin_summary(_: Admin, since: Since = None, until: Until = None) -> PeriodComparison:
        """Totals of a period and of the period of the same length before it."""
        return everyone().period_totals(since, until)

    @api.get("/admin/timeseries", response_model=list[DailyModelUsage], tags=["admin"])
    def admin_timeseries(_: Admin, since: Since = None, until: Until = None) -> list[DailyModelUsage]:
        """Requests, failures, tokens and cost per day, model and provider."""
        return everyone().daily_by_model(since, until)

    @api.get("/admin/top-users", response_model=list[UserUsage], tags=["admin"])
    def admin_top_users(
        _: Admin, since: Since = None, until: Until = None, limit: Annotated[int, Query(ge=1, le=1000)] = 10
    ) -> list[UserUsage]:
        """The users who cost most over a period."""
        return everyone().top_users(since, until, limit)

    @api.get("/admin/latency", response_model=LatencyHistogram, tags=["admin"])
    def admin_latency(_: Admin, since: Since = None, until: Until = None) -> LatencyHistogram:
        """Latency distribution of the period's most recent requests (at most 10,000)."""
        return everyone().latency_histogram(since, until)

    @api.get("/admin/latency-percentiles", response_model=LatencyPercentiles, tags=["admin"])
    def admin_latency_percentiles(_: Admin, since: Since = None, until: Until = None) -> LatencyPercentiles:
        """p50/p95/p99 latency by model and by deployment, with cancelled and failed counts, over the period's
        most recent calls and attempts (at most 20,000 of each)."""
        return everyone().latency_percentiles(since, until)

    @api.get("/admin/failures", response_model=list[FailureRecord], tags=["admin"])
    def admin_failures(
        _: Admin, since: Since = None, until: Until = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[FailureRecord]:
        """The period's most recent failures, with their error messages."""
        return everyone().recent_failures(since, until, limit)

    @api.get("/admin/refusals", response_model=RefusalSummary, tags=["admin"])
    def admin_refusals(
        _: Admin, since: Since = None, until: Until = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> RefusalSummary:
        """Calls refused by a hard budget or a rate limit over the period, by every process: totals, and
        counts by user, reason and model, most refused first."""
        return everyone().refusals(since, until, limit)

    @api.get("/admin/teams", response_model=list[Team], tags=["admin"])
    def admin_teams(_: Admin) -> list[Team]:
        """Every team with its members and its usage this month (UTC), costliest first."""
        return list_teams(state.db)

    @api.get("/admin/tags", response_model=list[TagUsage], tags=["admin"])
    def admin_tags(
        _: Admin, since: Since = None, until: Until = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
    ) -> list[TagUsage]:
        """Requests, tokens and cost by tag (the calls' ``metadata.tags``), costliest first."""
        return everyone().tag_usage(since, until, limit)

    @api.get("/admin/unpriced", response_model=list[UnpricedModel], tags=["admin"])
    def admin_unpriced(_: Admin, since: Since = None, until: Until = None) -> list[UnpricedModel]:
        """Models with requests that have no price (cost unknown, not zero)."""
        return everyone().unpriced_models(since, until)

    @api.get(
        "/admin/export",
        tags=["admin"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}, "description": "The rows."}},
    )
    def admin_export(
        _: Admin,
        format: Literal["csv", "jsonl"] = "csv",
        since: Since = None,
        until: Until = None,
        user: Annotated[str | None, Query(max_length=500, description="Only this user's requests.")] = None,
        end_user: Annotated[
            str | None, Query(max_length=500, description="Only the requests with this end user (exactly).")
        ] = None,
    ) -> StreamingResponse:
        """Every request of a period as CSV or JSON Lines, streamed."""
        where = ExportFilter(
            since=since, until=until, user_id=_text(user, "user"), end_user=_text(end_user or None, "end_user")
        )
        # The file is named by the days it holds, the last one inclusive as the dashboard shows it.
        last = (until - dt.timedelta(days=1)).isoformat() if until else "now"
        name = f"llmtally-requests-{since or 'start'}-to-{last}.{format}"
        return StreamingResponse(
            export_chunks(state.db, format, where),
            media_type=CONTENT_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return api
