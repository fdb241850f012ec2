"""Chainlit's data layer on llmtally's database: threads, messages and feedback in schema ``chat``.

Chainlit calls these methods from its event loop; each runs one short transaction on llmtally's
connection pool in a worker thread. Every write is the acting user's (the chat socket's user, or the
HTTP request's): a thread, message, element or feedback of another user is never changed or deleted,
whatever ids a client sends. Database errors are logged; a response says only that saving failed.
Thread listing and reading are scoped to the asking user by Chainlit (it checks the thread's author)
and by the queries themselves.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from chainlit.context import ChainlitContextException
from chainlit.context import context as chainlit_context
from chainlit.data.base import BaseDataLayer
from chainlit.data.utils import queue_until_user_message
from chainlit.types import Feedback, PageInfo, PaginatedResponse, Pagination, ThreadDict, ThreadFilter
from chainlit.user import PersistedUser, User

from llmtally.app.web.session_check import ACTING_USER
from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import DatabaseError, LlmtallyError
from llmtally.ledger.sanitize import clean_text, to_json

log = logging.getLogger("llmtally.app")

if TYPE_CHECKING:
    from chainlit.element import Element, ElementDict
    from chainlit.step import StepDict


def _acting_user() -> str | None:
    """Who is writing: the chat socket's user, else the user of the HTTP request's session (set by the
    session check, app/web/session_check.py). None: nobody, and nothing is written."""
    try:
        user = chainlit_context.session.user
    except ChainlitContextException:
        user = None
    if user is not None:
        return str(user.identifier)
    return ACTING_USER.get()


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _step_dict(row: dict[str, Any]) -> StepDict:
    step: dict[str, Any] = {
        "id": row["id"],
        "threadId": row["thread_id"],
        "parentId": row["parent_id"],
        "name": row["name"] or "",
        "type": row["type"],
        "input": row["input"] or "",
        "output": row["output"] or "",
        "metadata": row["metadata"] or {},
        "isError": row["is_error"],
        "showInput": row["show_input"],
        "language": row["language"],
        "generation": row["generation"],
        "tags": row["tags"],
        "createdAt": _iso(row["start_time"]),
        "start": _iso(row["start_time"]),
        "end": _iso(row["end_time"]),
    }
    if row.get("feedback_id"):
        step["feedback"] = {
            "id": row["feedback_id"],
            "forId": row["id"],
            "value": int(row["feedback_value"]),
            "comment": row["feedback_comment"],
        }
    return step  # type: ignore[return-value]


class ChatDataLayer(BaseDataLayer):
    """Chainlit persistence in PostgreSQL schema ``chat``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _all(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            return await asyncio.to_thread(self.db.fetch_all, sql, params or {})
        except LlmtallyError as exc:  # the detail goes to the log, not to a response
            log.error("chat storage: %s", exc)
            raise DatabaseError("the chat history is unavailable right now") from None

    async def _one(self, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _run(self, sql: str, params: dict[str, Any] | None = None) -> int:
        try:
            return await asyncio.to_thread(self.db.execute, sql, params or {})
        except LlmtallyError as exc:  # the detail (a constraint's name, say) goes to the log, not to a response
            log.error("chat storage: %s", exc)
            raise DatabaseError("the chat could not be saved right now") from None

    async def _own_thread(self, thread_id: str, me: str) -> bool:
        row = await self._one(query("chat_own_thread"), {"thread_id": thread_id, "me": me})
        if row is None:
            log.warning("chat: %s may not write into thread %s (not theirs)", me, thread_id)
            return False
        return True

    # -- users -------------------------------------------------------------------------------------
    async def get_user(self, identifier: str) -> PersistedUser | None:
        row = await self._one(query("chat_user"), {"i": identifier})
        if row is None:
            return None
        return PersistedUser(
            id=str(row["id"]),
            identifier=row["identifier"],
            createdAt=_iso(row["created_at"]) or "",
            metadata=row["metadata"] or {},
        )

    async def create_user(self, user: User) -> PersistedUser | None:
        row = await self._one(
            query("chat_upsert_user"),
            # not the login's session id (web_sessions.py): it belongs to one cookie, not to the user
            {"i": user.identifier, "m": to_json({k: v for k, v in (user.metadata or {}).items() if k != "session"})},
        )
        assert row is not None
        return PersistedUser(
            id=str(row["id"]),
            identifier=row["identifier"],
            createdAt=_iso(row["created_at"]) or "",
            metadata=row["metadata"] or {},
        )

    # -- threads -----------------------------------------------------------------------------------
    async def update_thread(
        self,
        thread_id: str,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> None:
        me = _acting_user()
        if me is None:
            return
        changed = await self._run(
            query("chat_upsert_thread"),
            {
                "id": thread_id,
                "name": clean_text(name),
                "user_id": user_id,
                "tags": tags,
                "meta": to_json({k: v for k, v in (metadata or {}).items() if v is not None}),
                "me": me,
            },
        )
        if not changed:
            log.warning("chat: %s may not change thread %s (not theirs)", me, thread_id)

    async def get_thread_author(self, thread_id: str) -> str:
        row = await self._one(query("chat_thread_author"), {"id": thread_id})
        if row is None or row["user_identifier"] is None:
            raise ValueError(f"thread {thread_id} not found")
        return str(row["user_identifier"])

    async def delete_thread(self, thread_id: str) -> None:
        me = _acting_user()
        if me is not None:
            await self._run(query("chat_delete_thread"), {"id": thread_id, "me": me})

    async def list_threads(self, pagination: Pagination, filters: ThreadFilter) -> PaginatedResponse[ThreadDict]:
        if not filters.userId:  # never list everyone's threads
            return PaginatedResponse(pageInfo=PageInfo(False, None, None), data=[])
        rows = await self._all(
            query("chat_list_threads"),
            {
                "user": filters.userId,
                "search": filters.search,
                "cursor": pagination.cursor,
                "limit": pagination.first + 1,
            },
        )
        has_next = len(rows) > pagination.first
        threads = [self._thread_dict(r, []) for r in rows[: pagination.first]]
        return PaginatedResponse(
            pageInfo=PageInfo(
                hasNextPage=has_next,
                startCursor=threads[0]["id"] if threads else None,
                endCursor=threads[-1]["id"] if threads else None,
            ),
            data=threads,
        )

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        thread = await self._one(query("chat_thread"), {"id": thread_id})
        if thread is None:
            return None
        steps = await self._all(
            query("chat_thread_steps"),
            {"id": thread_id},
        )
        return self._thread_dict(thread, [_step_dict(s) for s in steps])

    @staticmethod
    def _thread_dict(row: dict[str, Any], steps: list[StepDict]) -> ThreadDict:
        return ThreadDict(
            id=row["id"],
            createdAt=_iso(row["created_at"]) or "",
            name=row["name"],
            userId=str(row["user_id"]) if row["user_id"] else None,
            userIdentifier=row["user_identifier"],
            tags=row["tags"],
            metadata=row["metadata"] or {},
            steps=steps,
            elements=[],
        )

    # -- steps -------------------------------------------------------------------------------------
    @queue_until_user_message()  # type: ignore[untyped-decorator]
    async def create_step(self, step_dict: StepDict) -> None:
        thread_id = step_dict.get("threadId")
        me = _acting_user()
        if not thread_id or me is None or not await self._own_thread(thread_id, me):
            return
        start = _parse_time(step_dict.get("start") or step_dict.get("createdAt")) or dt.datetime.now(dt.UTC)
        changed = await self._run(
            query("chat_upsert_step"),
            {
                "id": step_dict["id"],
                "thread_id": thread_id,
                "parent_id": step_dict.get("parentId"),
                "name": clean_text(step_dict.get("name")),
                "type": step_dict.get("type") or "undefined",
                "input": clean_text(step_dict.get("input")),
                "output": clean_text(step_dict.get("output")),
                "metadata": to_json(step_dict.get("metadata") or {}),
                "is_error": bool(step_dict.get("isError")),
                "show_input": str(step_dict.get("showInput")) if step_dict.get("showInput") is not None else None,
                "language": step_dict.get("language"),
                "generation": to_json(step_dict.get("generation")),
                "tags": step_dict.get("tags"),
                "start": start,
                "end": _parse_time(step_dict.get("end")),
                "me": me,
            },
        )
        if not changed:
            log.warning("chat: %s may not change message %s (another thread's)", me, step_dict["id"])

    @queue_until_user_message()  # type: ignore[untyped-decorator]
    async def update_step(self, step_dict: StepDict) -> None:
        await self.create_step(step_dict)

    @queue_until_user_message()  # type: ignore[untyped-decorator]
    async def delete_step(self, step_id: str) -> None:
        me = _acting_user()
        if me is not None:
            await self._run(query("chat_delete_step"), {"id": step_id, "me": me})

    # -- feedback ----------------------------------------------------------------------------------
    async def upsert_feedback(self, feedback: Feedback) -> str:
        feedback_id = feedback.id or str(uuid.uuid4())
        me = _acting_user()
        changed = me is not None and await self._run(
            query("chat_upsert_feedback"),
            {
                "id": feedback_id,
                "step": feedback.forId,
                "value": float(feedback.value),
                "comment": clean_text(feedback.comment),
                "me": me,
            },
        )
        if not changed:  # Chainlit answers 500 with this text: no database detail in it
            raise ValueError("no such message")
        return feedback_id

    async def delete_feedback(self, feedback_id: str) -> bool:
        me = _acting_user()
        return me is not None and await self._run(query("chat_delete_feedback"), {"id": feedback_id, "me": me}) > 0

    # -- elements: metadata only (no file storage is configured) ----------------------------------
    @queue_until_user_message()  # type: ignore[untyped-decorator]
    async def create_element(self, element: Element) -> None:
        me = _acting_user()
        if not element.thread_id or me is None or not await self._own_thread(element.thread_id, me):
            return
        await self._run(
            query("chat_upsert_element"),
            {
                "id": element.id,
                "thread": element.thread_id,
                "step": element.for_id,
                "type": element.type,
                "name": element.name,
                "mime": element.mime,
                "url": element.url,
                "key": element.chainlit_key,
                "display": element.display,
                "size": element.size,
                "language": element.language,
                "page": getattr(element, "page", None),
                "props": json.dumps(getattr(element, "props", {}) or {}),
                "me": me,
            },
        )

    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        row = await self._one(query("chat_element"), {"id": element_id, "t": thread_id})
        if row is None:
            return None
        return {
            "id": row["id"],
            "threadId": row["thread_id"],
            "forId": row["step_id"],
            "type": row["type"] or "file",
            "name": row["name"],
            "mime": row["mime"],
            "url": row["url"],
            "chainlitKey": row["chainlit_key"],
            "display": row["display"],
            "size": row["size"],
            "language": row["language"],
            "page": row["page"],
            "props": row["props"] or {},
            "objectKey": row["object_key"],
        }

    @queue_until_user_message()  # type: ignore[untyped-decorator]
    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        me = _acting_user()
        if me is not None:
            await self._run(query("chat_delete_element"), {"id": element_id, "t": thread_id, "me": me})

    # -- the rest of Chainlit's interface ----------------------------------------------------------
    async def get_favorite_steps(self, user_id: str) -> list[StepDict]:
        return []

    async def build_debug_url(self) -> str:
        return ""

    async def close(self) -> None:
        """The pool belongs to the app, which closes it at shutdown."""
