"""The background writer: a bounded queue drained in batches by one thread, COPY into PostgreSQL.

The caller's path only puts a typed event on the queue. The writer thread takes up to
``batch_size`` events (waiting at most ``flush_interval_ms`` after the first), stages them with
COPY and moves them into request_logs with one INSERT ... ON CONFLICT DO NOTHING, whose
statement-level trigger updates counters and the rollup in the same transaction. A failed batch
is retried with backoff, never dropped; errors are logged loudly because LiteLLM would swallow them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmtally import metrics
from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.ledger.events import UsageEvent
from llmtally.ledger.pricing import resolve_cost
from llmtally.ledger.sanitize import clean_text, to_json

log = logging.getLogger("llmtally.writer")

MAX_BACKOFF_S = 5.0

# The fields of a stage row, in the order of ``event_row`` (and of the type public.llmtally_event).
EVENT_FIELDS = (
    "seq",
    "user_profile_id",
    "end_user",
    "session_id",
    "litellm_call_id",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "tokens_used",
    "total_cost",
    "cost_status",
    "messages",
    "response",
    "status",
    "error",
    "error_type",
    "latency_ms",
    "stream",
    "metadata",
    "created_at",
)


class BatchSink(Protocol):
    """Somewhere other than a database connection that takes a batch (the Supabase API path)."""

    @property
    def where(self) -> str: ...

    def write(self, events: Sequence[UsageEvent]) -> int: ...


@dataclass
class WriterStats:
    accepted: int = 0
    written: int = 0
    duplicates: int = 0
    batches: int = 0
    failed_attempts: int = 0
    last_error: str | None = None


def event_row(seq: int, event: UsageEvent, *, store_content: bool = True) -> tuple[Any, ...]:
    """The stage row for one event (column order of ``copy_stage``)."""
    cost, cost_status = resolve_cost(
        event.model, event.provider, event.prompt_tokens, event.completion_tokens, event.reported_cost
    )
    return (
        seq,
        clean_text(event.user_profile_id) or None,
        clean_text(event.end_user),
        clean_text(event.session_id),
        clean_text(event.litellm_call_id),
        clean_text(event.model) or "unknown",
        clean_text(event.provider) or "unknown",
        max(0, event.prompt_tokens),
        max(0, event.completion_tokens),
        max(0, event.tokens_used),
        cost,
        cost_status,
        to_json(event.messages) if store_content else None,
        to_json(event.response) if store_content else None,
        event.status,
        clean_text(event.error),
        clean_text(event.error_type),
        None if event.latency_ms is None else max(0, event.latency_ms),
        event.stream,
        to_json(event.metadata or {}),
        event.created_at,
    )


def write_events(db: Database, events: Sequence[UsageEvent], *, store_content: bool = True) -> int:
    """Write a batch in one transaction; return how many rows were new (replays count 0)."""
    rows = [event_row(i, e, store_content=store_content) for i, e in enumerate(events)]
    with db.transaction() as conn:
        conn.execute(query("create_stage"))
        with conn.cursor().copy(query("copy_stage")) as copy:
            for row in rows:
                copy.write_row(row)
        # llmtally_insert_events (migration 0002) returns how many rows were new.
        inserted = conn.execute(query("insert_from_stage")).fetchone()
        return int(inserted[0]) if inserted else 0


class LedgerWriter:
    """Owns the queue and the thread that drains it."""

    def __init__(
        self,
        target: Database | BatchSink,
        *,
        batch_size: int = 500,
        flush_interval_ms: int = 200,
        queue_size: int = 10_000,
        store_content: bool = True,
    ) -> None:
        self.target = target
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self.store_content = store_content
        self.stats = WriterStats()
        self._queue: queue.Queue[UsageEvent | None] = queue.Queue(maxsize=queue_size)
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- the caller's side -------------------------------------------------------------------
    def submit(self, event: UsageEvent) -> None:
        """Queue an event. Never does I/O; waits only if the queue is full (the database is far behind)."""
        with self._done:
            self.stats.accepted += 1
        metrics.EVENTS_ACCEPTED.inc()
        metrics.QUEUE_DEPTH.inc()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("llmtally queue full (%d events): the caller waits for the writer", self._queue.maxsize)
            self._queue.put(event)

    @property
    def pending(self) -> int:
        with self._done:
            return self.stats.accepted - self.stats.written - self.stats.duplicates

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every accepted event is in the database. False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            while self.stats.accepted > self.stats.written + self.stats.duplicates:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._done.wait(remaining)
        return True

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="llmtally-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> bool:
        """Drain the queue (up to ``timeout`` seconds) and stop the thread. False if events remain."""
        drained = self.flush(timeout)
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        if not drained:
            log.error("llmtally writer closed with %d events not written", self.pending)
        return drained

    def _take_batch(self) -> list[UsageEvent] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # let the loop see the stop marker after this batch
                break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            self._write_with_retry(batch)

    def _write(self, batch: list[UsageEvent]) -> int:
        if isinstance(self.target, Database):
            return write_events(self.target, batch, store_content=self.store_content)
        return self.target.write(batch)

    def _write_with_retry(self, batch: list[UsageEvent]) -> None:
        backoff = 0.1
        failed_before = False
        while True:
            started = time.perf_counter()
            try:
                inserted = self._write(batch)
            except Exception as exc:  # any failure: keep the events, retry, say so loudly
                failed_before = True
                metrics.EVENTS_FAILED.inc(len(batch))
                metrics.DATABASE_ERRORS.labels(kind=type(exc).__name__).inc()
                self.stats.failed_attempts += 1
                self.stats.last_error = str(exc)
                log.error(
                    "llmtally could not write %d usage events (will retry in %.1fs): %s", len(batch), backoff, exc
                )
                if self._stopping.is_set() and backoff >= MAX_BACKOFF_S:
                    log.error("llmtally writer stopping with %d events unwritten", len(batch))
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.observe(len(batch))
            metrics.QUEUE_DEPTH.dec(len(batch))
            metrics.EVENTS_WRITTEN.inc(inserted)
            metrics.EVENTS_DUPLICATE.inc(len(batch) - inserted)
            if failed_before:
                metrics.EVENTS_RETRIED.inc(len(batch))
            with self._done:
                self.stats.batches += 1
                self.stats.written += inserted
                self.stats.duplicates += len(batch) - inserted
                self._done.notify_all()
            return
