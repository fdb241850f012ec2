"""The background writer: a journal (the spool) drained in batches by one thread, COPY into PostgreSQL.

The caller's path appends the serialised event to this process's spool segment (one OS write, no
network). The writer thread reads the journal back in order, up to ``batch_size`` events (waiting at
most ``flush_interval_ms`` for a batch to fill), stages them with COPY and records them with one call
of llmtally_insert_events (migration 0009): each event is an attempt of a logical call in request_logs
(a replayed attempt changes nothing), and statement-level triggers update counters and rollups in the
same transaction; then it drops them from the journal.

A batch that fails because the database is unreachable (or the schema is missing, or a privilege)
is retried with backoff, never dropped; the journal holds everything meanwhile, so memory stays
bounded. A batch that the database refuses because of its data (SQLSTATE classes 22, 23, 54) is
split until the bad event is alone; the others are written, the bad one is written again without its
content (usage and cost still count) and, if even that fails, kept in the quarantine table with the
reason and the raw record. Segments of dead processes are replayed at start and every
``rescan_s`` seconds. Errors are logged loudly because LiteLLM would swallow them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from llmtally import metrics
from llmtally.db.database import Database, is_data_error
from llmtally.db.queries import query
from llmtally.ledger.events import UsageEvent
from llmtally.ledger.rows import event_row
from llmtally.ledger.sanitize import clean_text
from llmtally.ledger.spool import FAST_RECORD, Chunk, Segment, Spool, decode, encode, read_lines

log = logging.getLogger("llmtally.writer")

MAX_BACKOFF_S = 5.0


class BatchSink(Protocol):
    """Somewhere other than a database connection that takes a batch (the Supabase API path)."""

    @property
    def where(self) -> str: ...

    def write(self, events: Sequence[UsageEvent]) -> int: ...

    def quarantine(self, rows: Sequence[tuple[str | None, str, str]]) -> int: ...


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


def write_lines(db: Database, lines: Sequence[bytes], *, store_content: bool = True) -> int:
    """Write spool records as they are (each starts with FAST_RECORD): PostgreSQL reads their fields.

    The same rows as ``write_events`` over the decoded records, without decoding and re-encoding
    them in this process. Raises what the database raises; the caller falls back to write_events.
    """
    # COPY's text format: a record is one line of ASCII JSON (no tab, no newline); only backslashes
    # need doubling.
    data = b"".join(line.replace(b"\\", b"\\\\") for line in lines)
    with db.transaction() as conn:
        conn.execute(query("create_line_stage"))
        conn.execute(query("line_stage_storage"))
        with conn.cursor().copy(query("copy_line_stage")) as copy:
            copy.write(data)
        inserted = conn.execute(query("insert_from_line_stage"), {"store_content": store_content}).fetchone()
        return int(inserted[0]) if inserted else 0


def quarantine_rows(db: Database, rows: Sequence[tuple[str | None, str, str]]) -> int:
    """Keep events the database refused: (litellm_call_id, reason, raw record)."""
    with db.transaction() as conn, conn.cursor() as cur:
        cur.executemany(query("quarantine_insert"), [(c, r, raw, len(raw.encode())) for c, r, raw in rows])
    return len(rows)


POISON_CLASSES = ("22", "23", "54")  # data exception, integrity violation, program limit exceeded


def is_poison(exc: BaseException) -> bool:
    """True if the database refused the data itself (not a connection, schema or privilege problem)."""
    seen: BaseException | None = exc
    depth = 0
    while seen is not None and depth < 8:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "code", None)
        if isinstance(code, str) and len(code) == 5:
            return code[:2] in POISON_CLASSES
        # Refused while the batch was built or sent (e.g. by psycopg's COPY, with no SQLSTATE yet).
        if isinstance(seen, ValueError | TypeError | OverflowError | RecursionError) or is_data_error(seen):
            return True
        seen = seen.__cause__ or seen.__context__
        depth += 1
    return False


def _fast(line: bytes) -> bool:
    """A record PostgreSQL can read as it is: written by this version, and without the NUL escape
    that jsonb refuses (decoding replaces it)."""
    return line.startswith(FAST_RECORD) and b"\\u0000" not in line


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
        target: Database | BatchSink,
        *,
        spool: Spool,
        batch_size: int = 500,
        flush_interval_ms: int = 200,
        store_content: bool = True,
        content: str = "full",
        max_content_bytes: int = 4 << 20,
        batch_max_bytes: int = 32 << 20,
        rescan_s: float = 30.0,
    ) -> None:
        self.target = target
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self.store_content = store_content
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
        if complete and isinstance(self.target, Database) and all(_fast(line) for line in complete):
            try:
                written = self._retrying(lambda: self._write_lines(complete), len(complete))
            except _Poison:
                pass  # some record is not plain jsonb or refused: decode the batch and isolate it below
            else:
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
            log.error("llmtally: the database refused call %s: %s", event.litellm_call_id, poison.cause)
            reason = str(poison.cause)
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
            if isinstance(self.target, Database):
                db = self.target
                self._retrying(lambda: quarantine_rows(db, cleaned), len(rows))
            else:
                sink = self.target
                self._retrying(lambda: sink.quarantine(cleaned), len(rows))
        except _Poison as exc:  # should not happen: the raw record is plain text
            log.critical("llmtally could not quarantine %d events: %s; they are logged here: %r", len(rows), exc, rows)
            return
        metrics.EVENTS_QUARANTINED.inc(len(rows))
        with self._done:
            self.stats.quarantined += len(rows)

    def _retrying(self, attempt: Any, size: int) -> int:
        """Run ``attempt`` until it succeeds; back off on failures that are not the data's fault."""
        backoff = 0.1
        failed_before = False
        while True:
            started = time.perf_counter()
            try:
                result = int(attempt())
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
            metrics.FLUSH_SECONDS.observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.observe(size)
            if failed_before:
                metrics.EVENTS_RETRIED.inc(size)
            return result

    def _write_lines(self, lines: list[bytes]) -> int:
        assert isinstance(self.target, Database)
        inserted = write_lines(self.target, lines, store_content=self.store_content)
        metrics.EVENTS_WRITTEN.inc(inserted)
        metrics.EVENTS_DUPLICATE.inc(len(lines) - inserted)
        return inserted

    def _write(self, batch: list[UsageEvent]) -> int:
        if isinstance(self.target, Database):
            inserted = write_events(self.target, batch, store_content=self.store_content)
        else:
            inserted = self.target.write(batch)
        metrics.EVENTS_WRITTEN.inc(inserted)
        metrics.EVENTS_DUPLICATE.inc(len(batch) - inserted)
        return inserted
