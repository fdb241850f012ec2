"""The background writer: a journal (the spool) drained in batches by one thread into a sink.

The caller's path appends the serialised event to this process's spool segment (one OS write, no
network). The writer thread reads the journal back in order, up to ``batch_size`` events (waiting at
most ``flush_interval_ms`` for a batch to fill), and hands them to its sink (``BatchSink``): the
PostgreSQL sink (ledger/postgres_sink.py) COPYs them into a stage and records them with one call of
llmtally_insert_events (migration 0009), the Supabase API sink calls llmtally_ingest. Either way each
event is an attempt of a logical call in request_logs (a replayed attempt changes nothing), and
statement-level triggers update counters and rollups in the same transaction; then the writer drops
them from the journal. The writer knows nothing of the database but that protocol.

A batch that fails because the database is unreachable (or the schema is missing, or a privilege)
is retried with backoff, never dropped; the journal holds everything meanwhile, so memory stays
bounded. A batch that the sink refuses because of its data (``DataRefused``: SQLSTATE classes 22,
23, 54) is split until the bad event is alone; the others are written, the bad one is written again without its
content (usage and cost still count) and, if even that fails, kept in the quarantine table with the
reason and the raw record. Segments of dead processes are replayed at start and every
``rescan_s`` seconds. Errors are logged loudly because LiteLLM would swallow them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from llmtally import metrics
from llmtally.domain.events import UsageEvent
from llmtally.errors import DataRefused
from llmtally.ledger.sanitize import clean_text
from llmtally.ledger.spool import Chunk, Segment, Spool, decode, encode, read_lines

log = logging.getLogger("llmtally.writer")

MAX_BACKOFF_S = 5.0
T = TypeVar("T")


class BatchSink(Protocol):
    """Where the writer puts its batches: the only thing it knows of the database.

    Implemented by ``PostgresSink`` (ledger/postgres_sink.py) and ``SupabaseApiSink``
    (ledger/supabase_api.py). Writes are idempotent on the attempt's key: each returns how many rows
    were new, and a replayed event counts 0. A batch refused for its data raises ``DataRefused`` (or
    the ``ValueError``/``TypeError`` of a value that cannot be encoded): the writer then splits it
    until the bad event is alone. Any other error is retried with backoff.
    """

    @property
    def where(self) -> str:
        """Where the events go, for messages (no secret in it)."""
        ...

    def write(self, events: Sequence[UsageEvent]) -> int:
        """Write decoded events in one transaction."""
        ...

    def write_lines(self, lines: Sequence[bytes]) -> int | None:
        """Write spool records as they are, or return None if this sink cannot (the writer then decodes them)."""
        ...

    def quarantine(self, rows: Sequence[tuple[str | None, str, str]]) -> int:
        """Keep events refused even without their content: (litellm_call_id, reason, raw record)."""
        ...


@dataclass
class WriterStats:
    accepted: int = 0
    written: int = 0
    duplicates: int = 0
    quarantined: int = 0
    replayed: int = 0
    batches: int = 0
    failed_attempts: int = 0
    last_error: str | None = None


def is_poison(exc: BaseException) -> bool:
    """True if the sink refused the data itself (not a connection, schema or privilege problem)."""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 8:
        # Refused by the database, or while the batch was built (a value Python cannot encode).
        if isinstance(seen, DataRefused | ValueError | TypeError | OverflowError | RecursionError):
            return True
        seen = seen.__cause__ or seen.__context__
        depth += 1
    return False


class _Stopping(Exception):
    """The writer is closing while a write still fails: leave the events in the spool."""


class _Poison(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class LedgerWriter:
    """Owns the spool and the thread that drains it."""

    def __init__(
        self,
        sink: BatchSink,
        *,
        spool: Spool,
        batch_size: int = 500,
        flush_interval_ms: int = 200,
        content: str = "full",
        max_content_bytes: int = 4 << 20,
        batch_max_bytes: int = 32 << 20,
        rescan_s: float = 30.0,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self.content = content
        self.max_content_bytes = max_content_bytes
        self.batch_max_bytes = max(batch_max_bytes, 2 * max_content_bytes)
        self.rescan_s = rescan_s
        self.stats = WriterStats()
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._consumed = 0  # own events committed (written, duplicate or quarantined)
        self._flushing = 0  # callers waiting in flush(): write what is queued without waiting for the interval

    # -- the caller's side -------------------------------------------------------------------
    def submit(self, event: UsageEvent) -> None:
        """Journal an event: one serialisation and one OS write, never the network, never a wait.

        Raises SpoolFull (and counts it) when the spool is at its size limit.
        """
        line = encode(event, content=self.content, max_content_bytes=self.max_content_bytes)
        self.spool.append(line)
        metrics.EVENTS_ACCEPTED.inc()
        metrics.EVENTS_SPOOLED.inc()
        with self._done:
            self.stats.accepted += 1
            # Wake the writer only when it has something new to decide: the first event after an idle
            # spell (it starts the flush timer) or a full batch. Waking it for every event would make the
            # caller's thread and the writer trade the interpreter lock once per call.
            waiting = self.stats.accepted - self._consumed
            if waiting == 1 or waiting == self.batch_size:
                self._done.notify_all()

    @property
    def pending(self) -> int:
        with self._done:
            return self.stats.accepted - self._consumed

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until every accepted event is in the database (or quarantined). False on timeout.

        The writer writes what is queued at once, without waiting for the end of its flush interval.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._done:
            self._flushing += 1
            self._done.notify_all()
            try:
                while self.stats.accepted > self._consumed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._done.wait(remaining)
            finally:
                self._flushing -= 1
        return True

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self.spool.open()
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="llmtally-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 30.0) -> bool:
        """Drain the spool to the database (up to ``timeout`` seconds) and stop the thread.

        What is not written by then stays in the spool: the next start (or ``llmtally spool
        replay``) writes it. False if events were left.
        """
        drained = self.flush(timeout)
        self._stopping.set()
        with self._done:
            self._done.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():  # stuck in a database call: keep the spool locked until exit
                log.error("llmtally writer did not stop; %d events stay in the spool", self.pending)
                return False
            self._thread = None
        left = self.spool.close()
        if not drained or left:
            log.error(
                "llmtally writer closed with %d events not written; they stay in %s and are replayed at the next"
                " start or by `llmtally spool replay`",
                left,
                self.spool.directory,
            )
        return drained and not left

    def _run(self) -> None:
        try:
            next_scan = time.monotonic()
            while not self._stopping.is_set():
                if time.monotonic() >= next_scan:
                    self.replay_orphans()
                    next_scan = time.monotonic() + self.rescan_s
                chunk = self._next_chunk(next_scan)
                if chunk is not None:
                    self._write_chunk(chunk)
        except _Stopping:
            return
        except Exception:  # never die silently: the events are in the spool, say so
            log.exception("llmtally writer stopped by an unexpected error; unwritten events stay in the spool")

    def _next_chunk(self, until: float) -> Chunk | None:
        with self._done:
            first_seen: float | None = None
            while not self._stopping.is_set():
                waiting = self.stats.accepted - self._consumed
                now = time.monotonic()
                if waiting > 0 and first_seen is None:
                    first_seen = now
                due = first_seen is not None and (self._flushing or now - first_seen >= self.flush_interval)
                if waiting >= self.batch_size or due:
                    break
                if now >= until and waiting == 0:
                    return None
                wait = until - now if first_seen is None else self.flush_interval - (now - first_seen)
                self._done.wait(max(0.001, wait))
            else:
                return None
        return self.spool.read(max_lines=self.batch_size, max_bytes=self.batch_max_bytes)

    def _write_chunk(self, chunk: Chunk) -> None:
        written, duplicates, _quarantined = self._store_lines(chunk.lines)
        self.spool.commit(chunk)
        with self._done:
            self.stats.batches += 1
            self.stats.written += written
            self.stats.duplicates += duplicates
            self._consumed += len(chunk.lines)
            self._done.notify_all()

    # -- dead processes' segments ------------------------------------------------------------------
    def replay_orphans(self) -> int:
        """Write what dead processes left in the spool, oldest first; return how many events were replayed."""
        total = 0
        for segment in self.spool.claim_orphans():
            try:
                total += self._replay_segment(segment)
            except BaseException:
                Spool.release(segment, delete=False)
                raise
            Spool.release(segment, delete=True)
        return total

    def _replay_segment(self, segment: Segment) -> int:
        offset, replayed = segment.done, 0  # what its process committed is skipped
        log.warning("llmtally replaying %s (%d bytes) left by a process that stopped", segment.path, segment.size)
        while True:
            lines, end = read_lines(segment.fd, offset, None, max_lines=self.batch_size, max_bytes=self.batch_max_bytes)
            if not lines:
                return replayed
            written, duplicates, _quarantined = self._store_lines(lines)
            replayed += len(lines)
            metrics.EVENTS_REPLAYED.inc(len(lines))
            with self._done:
                self.stats.replayed += len(lines)
                self.stats.written += written
                self.stats.duplicates += duplicates
            offset = end
            segment.mark_done(end)  # a replay killed in turn resumes here

    # -- writing, isolating poison -----------------------------------------------------------------
    def _store_lines(self, lines: Sequence[bytes]) -> tuple[int, int, int]:
        """Write journal lines; return (new rows, duplicates, kept only in quarantine)."""
        complete = [line for line in lines if line.endswith(b"\n")]
        if complete:
            try:
                written = self._retrying(lambda: self._write_lines(complete), len(complete))
            except _Poison:
                written = None  # some record is not plain jsonb or refused: decode the batch and isolate it below
            if written is not None:
                return written, len(complete) - written, 0
        items: list[tuple[UsageEvent, bytes]] = []
        bad: list[tuple[str | None, str, str]] = []
        for line in complete:  # an unfinished last line is a killed process's write: never accepted
            try:
                items.append((decode(line), line))
            except (ValueError, TypeError, KeyError) as exc:
                bad.append((None, f"unreadable spool record: {exc}", line.decode("utf-8", "replace")))
        written, quarantined = self._store(items) if items else (0, 0)
        if bad:
            self._quarantine(bad)
            quarantined += len(bad)
        return written, len(complete) - written - quarantined, quarantined

    def _store(self, items: list[tuple[UsageEvent, bytes]]) -> tuple[int, int]:
        """Write events; return (new rows, kept only in quarantine). Splits a batch the database refuses."""
        try:
            return self._retrying(lambda: self._write([e for e, _ in items]), len(items)), 0
        except _Poison as poison:
            if len(items) > 1:
                half = len(items) // 2
                first, second = self._store(items[:half]), self._store(items[half:])
                return first[0] + second[0], first[1] + second[1]
            event, line = items[0]
            reason = str(poison.cause)
            # A call id or a reason with a lone surrogate (a hostile client's) would fail the log handler's
            # UTF-8 encoding, losing the line: both are logged as the database would store them.
            log.error(
                "llmtally: the database refused call %s: %s", clean_text(event.litellm_call_id), clean_text(reason)
            )
        # Alone and refused: record its usage without content, then keep the original in quarantine.
        stripped = dataclasses.replace(
            event,
            messages=None,
            response=None,
            error=None if event.error is None else clean_text(event.error[:1000]),
            metadata={},
            content_truncated=True,
            content_original_bytes=event.content_original_bytes or len(line),
        )
        try:
            written = self._retrying(lambda: self._write([stripped]), 1)
        except _Poison as again:
            reason = f"{reason}; without content: {again.cause}"
            written = 0
        self._quarantine([(event.litellm_call_id, reason, line.decode("utf-8", "replace"))])
        return written, 0 if written else 1

    def _quarantine(self, rows: list[tuple[str | None, str, str]]) -> None:
        cleaned = [(c and clean_text(c), clean_text(r) or "", clean_text(raw) or "") for c, r, raw in rows]
        try:
            self._retrying(lambda: self.sink.quarantine(cleaned), len(rows))
        except _Poison as exc:  # should not happen: the raw record is plain text
            log.critical("llmtally could not quarantine %d events: %s; they are logged here: %r", len(rows), exc, rows)
            return
        metrics.EVENTS_QUARANTINED.inc(len(rows))
        with self._done:
            self.stats.quarantined += len(rows)

    def _retrying(self, attempt: Callable[[], T], size: int) -> T:
        """Run ``attempt`` until it succeeds; back off on failures that are not the data's fault.

        A result of None (the sink did not take the batch that way) is not counted as a write.
        """
        backoff = 0.1
        failed_before = False
        while True:
            started = time.perf_counter()
            try:
                result = attempt()
            except Exception as exc:
                if is_poison(exc):
                    raise _Poison(exc) from exc
                failed_before = True
                metrics.EVENTS_FAILED.inc(size)
                metrics.DATABASE_ERRORS.labels(kind=type(exc).__name__).inc()
                with self._done:
                    self.stats.failed_attempts += 1
                    self.stats.last_error = str(exc)
                log.error("llmtally could not write %d usage events (will retry in %.1fs): %s", size, backoff, exc)
                if self._stopping.wait(backoff):
                    raise _Stopping() from exc
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            if result is None:
                return result
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.observe(size)
            if failed_before:
                metrics.EVENTS_RETRIED.inc(size)
            return result

    def _write_lines(self, lines: list[bytes]) -> int | None:
        inserted = self.sink.write_lines(lines)
        if inserted is not None:
            metrics.EVENTS_WRITTEN.inc(inserted)
            metrics.EVENTS_DUPLICATE.inc(len(lines) - inserted)
        return inserted

    def _write(self, batch: list[UsageEvent]) -> int:
        inserted = self.sink.write(batch)
        metrics.EVENTS_WRITTEN.inc(inserted)
        metrics.EVENTS_DUPLICATE.inc(len(batch) - inserted)
        return inserted
