"""The request explorer: every logical call, filtered, sorted and paged on the server, and one call in full.

Paging is LIMIT/OFFSET with the offset capped at ``MAX_OFFSET`` (page ``MAX_PAGE``). Keyset paging
would need a cursor per sort key and direction, and cost and latency have NULLs (unpriced, untimed)
and ties. With the cap, one page never reads more than ``MAX_OFFSET + PAGE_SIZE`` rows along an index,
and a narrower filter reaches any call. The ORDER BY is chosen from ``SORTS``, a fixed set of named
fragments in ``sql/queries/explorer.sql``: nothing of the request's text reaches the SQL but bound values.

An explorer made with ``viewer=`` reads as that user (row-level security) and always filters on them:
another user's call is invisible in the list and in ``detail``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import UserInputError

PAGE_SIZE = 50
DEFAULT_DAYS = 30  # without a start date: the last 30 days (the end date's included), so a sort stays bounded
MAX_PAGE = 200
MAX_OFFSET = PAGE_SIZE * (MAX_PAGE - 1)
SORTS = ("time", "cost", "tokens", "latency")
STATUSES = ("success", "failure", "cancelled")
_TEXT_MOST = 200

SortKey = Literal["time", "cost", "tokens", "latency"]

# How each cost_status came about, in words for the drill-down.
PRICING = {
    "priced": "the cost LiteLLM reported for the call",
    "recomputed": "recomputed from LiteLLM's price map with the call's whole usage",
    "custom": "a custom price set with llmtally prices set",
    "unpriced": "no price known for this model: the cost is unknown, not zero",
}


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class ExplorerRow(_Row):
    """One logical call in the explorer's table."""

    id: int
    created_at: dt.datetime
    user_profile_id: str | None
    end_user: str | None
    model: str
    provider: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    tokens_used: int
    total_cost: Decimal | None
    cost_status: str
    latency_ms: int | None
    stream: bool
    cache_hit: bool
    usage_source: str
    attempt_count: int
    failed_attempts: int
    error_type: str | None
    messages: Any = None
    response: Any = None


class ExplorerPage(_Row):
    rows: list[ExplorerRow]
    page: int
    has_next: bool


class AttemptRow(_Row):
    """One attempt (a retry or a fallback is one more) of a logical call."""

    id: int
    created_at: dt.datetime
    litellm_call_id: str
    status: str
    model: str
    provider: str
    model_group: str | None
    model_id: str | None
    api_base: str | None
    error_type: str | None
    error: str | None
    latency_ms: int | None
    first_token_ms: int | None
    prompt_tokens: int
    completion_tokens: int
    tokens_used: int
    total_cost: Decimal | None
    cost_status: str
    cache_hit: bool
    usage_source: str
    stream: bool


class RequestDetail(_Row):
    """One logical call in full, with its attempts."""

    id: int
    created_at: dt.datetime
    user_profile_id: str | None
    end_user: str | None
    session_id: str | None
    litellm_call_id: str
    call_key: str
    trace_id: str | None
    model: str
    model_group: str | None
    provider: str
    status: str
    error_type: str | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    tokens_used: int
    cached_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    audio_tokens: int
    total_cost: Decimal | None
    cost_status: str
    cache_hit: bool
    saved_cost: Decimal | None
    usage_source: str
    latency_ms: int | None
    first_token_ms: int | None
    stream: bool
    attempt_count: int
    failed_attempts: int
    metadata: dict[str, Any]
    content_truncated: bool
    content_original_bytes: int | None
    messages: Any = None
    response: Any = None
    attempts: list[AttemptRow] = []

    @property
    def pricing(self) -> str:
        return PRICING.get(self.cost_status, self.cost_status)


@dataclass(frozen=True)
class ExplorerFilter:
    """What the explorer shows: each field None means "any". ``until`` is the last day shown (inclusive)."""

    user_id: str | None = None
    end_user: str | None = None  # the call's end_user, exactly (a team key's member, the Proxy's end user)
    model: str | None = None
    provider: str | None = None
    status: str | None = None
    cache_hit: bool | None = None
    estimated: bool | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    text: str | None = None
    tag: str | None = None  # one of the call's metadata.tags
    sort: SortKey = "time"
    descending: bool = True
    page: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, allow_user: bool) -> ExplorerFilter:
        """Read GET query parameters (empty means absent); a bad one raises UserInputError naming it."""

        def text(name: str, most: int = 500) -> str | None:
            value = (params.get(name) or "").strip()
            if not value:
                return None
            if len(value) > most or "\x00" in value:
                raise UserInputError(f"{name} must be at most {most} characters, without NUL")
            return value

        def choice(name: str, allowed: tuple[str, ...]) -> str | None:
            value = text(name)
            if value is not None and value not in allowed:
                raise UserInputError(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
            return value

        def flag(name: str) -> bool | None:
            value = choice(name, ("yes", "no"))
            return None if value is None else value == "yes"

        def day(name: str) -> dt.date | None:
            value = text(name, 10)
            if value is None:
                return None
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                raise UserInputError(f"{name} must be a date like 2026-01-31 (got {value!r})") from None

        user = text("user")
        if user is not None and not allow_user:
            raise UserInputError("user: only administrators filter by user")
        since, until = day("since"), day("until")
        if since is None:
            since = (until or dt.datetime.now(dt.UTC).date()) - dt.timedelta(days=DEFAULT_DAYS - 1)
        if since and until and until < since:
            raise UserInputError(f"until ({until}) must not be before since ({since})")
        page_text = text("page", 6) or "1"
        if not page_text.isdigit() or not 1 <= int(page_text) <= MAX_PAGE:
            raise UserInputError(f"page must be a whole number from 1 to {MAX_PAGE} (narrow the filters to go further)")
        order = choice("order", ("desc", "asc")) or "desc"
        return cls(
            user_id=user,
            end_user=text("end_user"),
            model=text("model"),
            provider=text("provider"),
            status=choice("status", STATUSES),
            cache_hit=flag("cache_hit"),
            estimated=flag("estimated"),
            since=since,
            until=until,
            text=text("q", _TEXT_MOST),
            tag=text("tag", 64),
            sort=choice("sort", SORTS) or "time",  # type: ignore[arg-type]
            descending=order == "desc",
            page=int(page_text),
        )

    def params(self) -> dict[str, str]:
        """The filter as GET parameters (what a shared URL carries), without the defaults."""
        out: dict[str, str] = {}
        for name, value in (
            ("user", self.user_id),
            ("end_user", self.end_user),
            ("model", self.model),
            ("provider", self.provider),
            ("status", self.status),
            ("since", self.since.isoformat() if self.since else None),
            ("until", self.until.isoformat() if self.until else None),
            ("q", self.text),
            ("tag", self.tag),
        ):
            if value:
                out[name] = value
        for name, flag in (("cache_hit", self.cache_hit), ("estimated", self.estimated)):
            if flag is not None:
                out[name] = "yes" if flag else "no"
        if self.sort != "time":
            out["sort"] = self.sort
        if not self.descending:
            out["order"] = "asc"
        return out


def _midnight(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time(0), dt.UTC)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# The ORDER BY of each sort, each a named query: one fragment per sort and direction, so each can be
# read along its own index (a CASE in one ORDER BY could not), and no text of a request reaches SQL.
ORDERS = {
    ("time", True): "explorer_order_time_desc",
    ("time", False): "explorer_order_time_asc",
    ("cost", True): "explorer_order_cost_desc",
    ("cost", False): "explorer_order_cost_asc",
    ("tokens", True): "explorer_order_tokens_desc",
    ("tokens", False): "explorer_order_tokens_asc",
    ("latency", True): "explorer_order_latency_desc",
    ("latency", False): "explorer_order_latency_asc",
}


def ordered_query(sort: SortKey, descending: bool) -> str:
    """The explorer's list query with the ORDER BY of one whitelisted sort."""
    if sort not in SORTS:
        raise UserInputError(f"sort must be one of {', '.join(SORTS)}")
    return query("explorer_requests").replace("{order}", query(ORDERS[(sort, descending)]))


class RequestExplorer:
    """The explorer over one database: as the server (every user) or, with ``viewer``, as that user."""

    def __init__(self, db: Database, *, with_content: bool, viewer: str | None = None) -> None:
        self.db = db
        self.with_content = with_content
        self.viewer = viewer

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.viewer is not None:
            return self.db.fetch_all_as_user(self.viewer, sql, params)
        return self.db.fetch_all(sql, params)

    def query_params(self, where: ExplorerFilter) -> dict[str, Any]:
        """The bound values of the list query for ``where`` (as the viewer, when there is one)."""
        if where.text is not None and not self.with_content:
            raise UserInputError("text search needs stored content (LLMTALLY_CONTENT=full)")
        offset = (where.page - 1) * PAGE_SIZE
        if not 0 <= offset <= MAX_OFFSET:
            raise UserInputError(f"page must be a whole number from 1 to {MAX_PAGE}")
        return {
            "user_id": self.viewer if self.viewer is not None else where.user_id,
            "end_user": where.end_user,
            "model": where.model,
            "provider": where.provider,
            "status": where.status,
            "cache_hit": where.cache_hit,
            "estimated": where.estimated,
            "since": _midnight(where.since),
            "until": _midnight(where.until + dt.timedelta(days=1)) if where.until else None,
            "text": _like(where.text) if where.text else None,
            "tag": where.tag,
            "with_content": self.with_content,
            "limit": PAGE_SIZE + 1,
            "offset": offset,
        }

    def page(self, where: ExplorerFilter) -> ExplorerPage:
        rows = self._rows(ordered_query(where.sort, where.descending), self.query_params(where))
        return ExplorerPage(
            rows=[ExplorerRow.model_validate(r) for r in rows[:PAGE_SIZE]],
            page=where.page,
            has_next=len(rows) > PAGE_SIZE and where.page < MAX_PAGE,
        )

    def detail(self, request_id: int) -> RequestDetail | None:
        """The call with this id and its attempts; None when there is none (or it is another user's)."""
        if not 1 <= request_id < 2**63:
            return None
        rows = self._rows(
            query("explorer_request"), {"id": request_id, "user_id": self.viewer, "with_content": self.with_content}
        )
        if not rows:
            return None
        attempts = self._rows(query("explorer_attempts"), {"call_key": rows[0]["call_key"], "user_id": self.viewer})
        return RequestDetail.model_validate({**rows[0], "attempts": attempts})

    def choices(self, since: dt.date | None = None) -> list[tuple[str, str]]:
        """(model, provider) pairs seen since ``since`` (default: 90 days ago), for the filters."""
        today = dt.datetime.now(dt.UTC).date()
        sql = query("explorer_choices")
        if self.viewer is not None:  # usage_daily_totals is server-only; a user's own rows are usage_daily
            sql = sql.replace("public.usage_daily_totals", "public.usage_daily")
        rows = self._rows(sql, {"since": since or today - dt.timedelta(days=90), "until": today + dt.timedelta(days=1)})
        return [(r["model"], r["provider"]) for r in rows]
