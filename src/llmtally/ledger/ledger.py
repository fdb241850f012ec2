"""The public face of the ledger: start it, let LiteLLM calls flow, flush, close."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any

from llmtally.db.database import Database
from llmtally.db.migrations import ensure_current, migrate
from llmtally.db.queries import query
from llmtally.domain.events import UsageEvent
from llmtally.errors import UserInputError
from llmtally.integrations.litellm.models import count_tokens, split_provider
from llmtally.ledger.postgres_sink import PostgresSink
from llmtally.ledger.spool import Spool
from llmtally.ledger.writer import BatchSink, LedgerWriter, WriterStats

if TYPE_CHECKING:
    from llmtally.integrations.litellm.callback import LedgerCallback
    from llmtally.ledger.supabase_api import SupabaseApiSink
from llmtally.settings import Settings

log = logging.getLogger("llmtally")

RETENTION_INTERVAL_S = 24 * 3600


class Ledger:
    """Records every LiteLLM call in PostgreSQL.

    ::

        ledger = llmtally.Ledger.from_env()
        await ledger.start()          # connects, migrates an embedded database, registers the callback
        await litellm.acompletion(..., user=user_id, metadata={"user_profile_id": user_id})
        await ledger.close()          # flushes what is queued
    """

    def __init__(
        self, database_url: str | None = None, *, settings: Settings | None = None, litellm_callback: bool = True
    ) -> None:
        """``litellm_callback=False`` starts the writer without registering the SDK callback (the proxy
        plug-in registers its own, which reads the proxy's identity)."""
        base = settings or Settings()
        self.settings = base.model_copy(update={"database_url": database_url}) if database_url else base
        self.db: Database | None = None
        self._api: SupabaseApiSink | None = None  # set instead of db when writing through Supabase's API
        self._writer: LedgerWriter | None = None
        self._callback: LedgerCallback | None = None
        self._retention: threading.Thread | None = None
        self._retention_stop = threading.Event()
        self._litellm_callback = litellm_callback

    @classmethod
    def from_env(cls) -> Ledger:
        """A ledger configured from ``DATABASE_URL`` / ``LLMTALLY_*`` (embedded database if no URL)."""
        return cls(settings=Settings())

    # -- lifecycle -----------------------------------------------------------------------------
    def start_sync(self) -> Ledger:
        """Blocking twin of :meth:`start`."""
        if self._writer is not None:
            return self
        sink: BatchSink
        api = self.settings.supabase_api()
        if api is not None:  # only a Supabase URL and a server key: write through its API
            from llmtally.ledger.supabase_api import SupabaseApiSink

            sink = self._api = SupabaseApiSink(*api, store_content=self.settings.content != "none").open()
        else:
            db = Database.from_settings(self.settings, max_size=4).open()
            try:
                if db.embedded is not None:
                    migrate(db)  # our own database: keep it current
                else:
                    ensure_current(db)  # a shared database is migrated only by `llmtally migrate`
            except BaseException:
                db.close()
                raise
            self.db = db
            sink = PostgresSink(db, store_content=self.settings.content != "none")
        self._writer = LedgerWriter(
            sink,
            spool=Spool(
                self.settings.home / "spool",
                max_bytes=self.settings.spool_max_bytes,
                fsync=self.settings.spool_fsync,
            ),
            batch_size=self.settings.batch_size,
            flush_interval_ms=self.settings.flush_interval_ms,
            content=self.settings.content,
            max_content_bytes=self.settings.max_content_bytes,
        )
        self._writer.start()
        if self.db is not None and (self.settings.retention_content_days or self.settings.retention_rows_days):
            self._retention_stop.clear()
            self._retention = threading.Thread(target=self._retention_loop, name="llmtally-retention", daemon=True)
            self._retention.start()
        if self._litellm_callback:
            from llmtally.integrations.litellm.callback import LedgerCallback, register

            self._callback = LedgerCallback(self._writer.submit)
            register(self._callback)
        log.info("llmtally ledger recording to %s", sink.where)
        return self

    async def start(self) -> Ledger:
        """Connect (starting the embedded server if no URL is set) and register the LiteLLM callback."""
        return await asyncio.to_thread(self.start_sync)

    def flush_sync(self, timeout: float | None = 30.0) -> bool:
        """Wait until every finished call is in the database. False on timeout.

        LiteLLM logs synchronous calls from its own thread pool after they return: that pool is
        waited for first.
        """
        writer = self._require_writer()
        from llmtally.integrations.litellm.callback import wait_for_litellm_logging_threads

        threads_idle = wait_for_litellm_logging_threads(timeout)
        return writer.flush(timeout) and threads_idle

    async def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every finished LiteLLM call is in the database. False on timeout.

        LiteLLM runs async callbacks from its own logging queue after the call returns; that
        queue is drained first, so a call awaited before ``flush()`` is recorded when it returns.
        """
        from llmtally.integrations.litellm.callback import drain_litellm_async_logging

        self._require_writer()
        await drain_litellm_async_logging(timeout)
        return await asyncio.to_thread(self.flush_sync, timeout)

    def close_sync(self, timeout: float | None = None) -> bool:
        """Wait for LiteLLM's pending logging, unregister the callback, drain the spool (at most
        ``timeout`` seconds, default LLMTALLY_SHUTDOWN_TIMEOUT_S), release the database. False if
        events were left unwritten: they stay in the spool for the next start."""
        if timeout is None:
            timeout = self.settings.shutdown_timeout_s
        drained = True
        if self._callback is not None:
            from llmtally.integrations.litellm.callback import unregister, wait_for_litellm_logging_threads

            drained = wait_for_litellm_logging_threads(timeout)
            unregister(self._callback)
            self._callback = None
        if self._retention is not None:
            self._retention_stop.set()
            self._retention.join(timeout=10)
            self._retention = None
        if self._writer is not None:
            drained = self._writer.close(timeout) and drained
            self._writer = None
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._api is not None:
            self._api.close()
            self._api = None
        return drained

    async def close(self, timeout: float | None = None) -> bool:
        """Record what LiteLLM still has queued, then :meth:`close_sync`."""
        if timeout is None:
            timeout = self.settings.shutdown_timeout_s
        if self._callback is not None:
            from llmtally.integrations.litellm.callback import drain_litellm_async_logging

            await drain_litellm_async_logging(timeout)
        return await asyncio.to_thread(self.close_sync, timeout)

    async def __aenter__(self) -> Ledger:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __enter__(self) -> Ledger:
        return self.start_sync()

    def __exit__(self, *exc: object) -> None:
        self.close_sync()

    def _retention_loop(self) -> None:
        """Apply LLMTALLY_RETENTION_* at start, then once a day, while the ledger runs."""
        from llmtally.ledger.retention import apply_retention

        db = self.db
        while db is not None and not self._retention_stop.is_set():
            try:
                report = apply_retention(
                    db,
                    content_days=self.settings.retention_content_days,
                    rows_days=self.settings.retention_rows_days,
                )
                log.info("llmtally retention: %s", report)
            except Exception:
                log.exception("llmtally retention failed; it is tried again in a day")
            self._retention_stop.wait(RETENTION_INTERVAL_S)

    @property
    def stats(self) -> WriterStats:
        return self._require_writer().stats

    def _require_writer(self) -> LedgerWriter:
        if self._writer is None:
            raise UserInputError("the ledger is not started: call `await ledger.start()` first")
        return self._writer

    def _require_db(self) -> Database:
        if self.db is None:
            raise UserInputError("the ledger is not started: call `await ledger.start()` first")
        return self.db

    # -- what the application tells us ---------------------------------------------------------
    def record(self, event: UsageEvent) -> None:
        """Queue an event built by the application (no I/O)."""
        self._require_writer().submit(event)

    def record_cancelled(
        self,
        *,
        model: str,
        messages: Any = None,
        partial_response: str = "",
        litellm_call_id: str | None = None,
        user_profile_id: str | None = None,
        session_id: str | None = None,
        end_user: str | None = None,
        provider: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        started_at: dt.datetime | None = None,
        first_token_at: dt.datetime | None = None,
        stream: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> UsageEvent:
        """Record a call the application abandoned or cancelled (LiteLLM fires no event for these).

        Tokens not given are counted with LiteLLM's tokenizer: the prompt from ``messages``, the
        completion from ``partial_response`` (what was streamed before the stop). ``first_token_at`` is
        when the stream's first chunk came, if one did (the call's time to first token).
        """
        if provider is None:
            # Store the model as LiteLLM's own events do ("claude-x", not "anthropic/claude-x").
            model, provider = split_provider(model)
        # Counted here, the tokens are LiteLLM's tokenizer's estimate, not what the provider billed.
        estimated = prompt_tokens is None or completion_tokens is None
        if prompt_tokens is None:
            prompt_tokens = count_tokens(model, messages=messages) if messages else 0
        if completion_tokens is None:
            completion_tokens = count_tokens(model, text=partial_response) if partial_response else 0
        now = dt.datetime.now(dt.UTC)
        start = started_at or now
        event = UsageEvent(
            litellm_call_id=litellm_call_id or f"cancelled-{uuid.uuid4()}",
            model=model,
            provider=provider,
            status="cancelled",
            user_profile_id=user_profile_id,
            end_user=end_user,
            session_id=session_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            messages=messages,
            response={"partial": partial_response} if partial_response else None,
            latency_ms=_ms_between(start, now),
            first_token_ms=_ms_between(start, first_token_at) if stream and first_token_at else None,
            stream=stream,
            metadata=metadata or {},
            created_at=start,
            usage_source="estimated" if estimated else "provider",
        )
        self.record(event)
        return event

    def upsert_user_sync(
        self, user_id: str, *, email: str | None = None, full_name: str | None = None, provider: str | None = None
    ) -> None:
        if not user_id:
            raise UserInputError("user_id must not be empty")
        if self._api is not None:
            self._api.upsert_user(user_id, email=email, full_name=full_name, provider=provider)
            return
        self._require_db().execute(
            query("upsert_user"), {"user_id": user_id, "email": email, "full_name": full_name, "provider": provider}
        )

    async def upsert_user(
        self, user_id: str, *, email: str | None = None, full_name: str | None = None, provider: str | None = None
    ) -> None:
        """Create or refresh a user's profile (the chat app calls this at every login)."""
        await asyncio.to_thread(self.upsert_user_sync, user_id, email=email, full_name=full_name, provider=provider)

    def link_session_sync(self, session_id: str, user_id: str) -> None:
        if not session_id or not user_id:
            raise UserInputError("session_id and user_id must not be empty")
        if self._api is not None:
            self._api.link_session(session_id, user_id)
            return
        self._require_db().execute(query("link_session"), {"session_id": session_id, "user_id": user_id})

    async def link_session(self, session_id: str, user_id: str) -> None:
        """Map a session id to a user, so calls that carry only the session are still attributed."""
        await asyncio.to_thread(self.link_session_sync, session_id, user_id)


def _ms_between(start: dt.datetime, then: dt.datetime) -> int:
    """Whole milliseconds from ``start`` to ``then`` (0 if ``then`` is earlier)."""
    return max(0, int((then - start).total_seconds() * 1000))
