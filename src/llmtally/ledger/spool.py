"""The local spool: a write-ahead journal of accepted usage events under ``LLMTALLY_HOME/spool``.

Every accepted event is appended, as one line of JSON, to a segment file of this process before
``submit`` returns. The writer thread reads the journal back in order, writes batches to the
database and drops what is committed (a segment is truncated or deleted once all of it is in the
database). So memory stays bounded whatever the database does, and an event survives the death of
its process: the write reached the operating system, which keeps it after a SIGKILL. Power loss can
lose the tail that was not yet on disk, unless ``LLMTALLY_SPOOL_FSYNC`` is set.

Each process holds an exclusive ``flock`` on its own segments. A segment whose lock can be taken
belongs to a process that is gone: the next ledger (or ``llmtally spool replay``) claims it under
the lock, replays it in order and deletes it. Two processes never replay the same segment, and a
replay that repeats rows already written counts nothing twice (each attempt is unique on
``request_attempts.attempt_key``). A done mark beside each segment says how much of it is committed,
so a status or a replay skips that part.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from llmtally import metrics
from llmtally.domain.cost import event_cost
from llmtally.domain.events import Status, UsageEvent, UsageSource
from llmtally.errors import SpoolFull
from llmtally.integrations.litellm.prices import LITELLM_PRICES
from llmtally.ledger.redact import redact_value
from llmtally.ledger.sanitize import _default, clean_text

log = logging.getLogger("llmtally.spool")

SUFFIX = ".seg"
DONE_SUFFIX = ".done"  # beside a segment: how many of its bytes are committed, so a status or a replay skips them
TRUNCATED_KEY = "llmtally_truncated"


# -- records -------------------------------------------------------------------------------------
# A record written by this version starts with this: it carries its resolved cost ("c", "cs"), and
# PostgreSQL can read it as it is. Older records are decoded and rebuilt in Python.
FAST_RECORD = b'{"v":2,'


def _dumps(value: Any) -> str:
    # ASCII output: NULs, lone surrogates and newlines are escaped, so a record is one clean line.
    return json.dumps(value, default=_default, ensure_ascii=True, separators=(",", ":"))


def _text(value: Any) -> str:
    try:
        return json.dumps(value, default=_default, ensure_ascii=False)
    except (ValueError, RecursionError, TypeError):
        pass
    try:
        return repr(value)
    except Exception:  # e.g. nesting deeper than repr goes
        return f"<unrepresentable {type(value).__name__}>"


def _content_bytes(value: Any) -> int:
    return 0 if value is None else len(_text(value).encode("utf-8", "replace"))


def _truncated(value: Any, original: int, keep: int) -> dict[str, Any] | None:
    if value is None:
        return None
    text = _text(value)
    return {TRUNCATED_KEY: True, "original_bytes": original, "head": clean_text(text[:keep])}


def encode(event: UsageEvent, *, content: str = "full", max_content_bytes: int = 4 << 20) -> bytes:
    """One journal line for an event: its fields as JSON, content per the content mode and size limit.

    Never raises for odd content: what cannot be serialised is stored as its repr, what is too
    large is cut (with the flag and the original size kept on the event).
    """
    messages, response, error = event.messages, event.response, event.error
    if content == "none":
        messages = response = None
    elif content == "redacted":
        messages, response = redact_value(messages), redact_value(response)
        error = redact_value(error)
    # The cost is resolved here, from LiteLLM's price map, so that the writer can hand the line to
    # PostgreSQL as it is (see FAST_RECORD and writer.write_lines).
    cost, cost_status = event_cost(event, LITELLM_PRICES)
    record: dict[str, Any] = {
        "v": 2,
        "id": event.litellm_call_id or f"llmtally-{uuid.uuid4()}",
        "model": event.model,
        "status": event.status,
        "provider": event.provider,
        "user": event.user_profile_id,
        "end_user": event.end_user,
        "session": event.session_id,
        "pt": event.prompt_tokens,
        "ct": event.completion_tokens,
        "tt": event.total_tokens,
        "cost": event.reported_cost,
        "error": error,
        "error_type": event.error_type,
        "latency": event.latency_ms,
        "ft": event.first_token_ms,
        "stream": event.stream,
        "meta": event.metadata,
        "at": event.created_at.isoformat(),
        "messages": messages,
        "response": response,
        "trunc": event.content_truncated,
        "orig": event.content_original_bytes,
        "c": None if cost is None else str(cost),
        "cs": cost_status,
        # Attempts and usage details (migration 0009); records without them are read with defaults.
        "key": event.key,
        "ak": event.attempt_key,
        "trace": event.trace_id,
        "group": event.model_group,
        "mid": event.model_id,
        "base": event.api_base,
        "hit": event.cache_hit,
        "saved": event.saved_cost,
        "src": event.usage_source,
        "cat": event.cached_tokens,
        "ccr": event.cache_creation_tokens,
        "rt": event.reasoning_tokens,
        "aud": event.audio_tokens,
    }
    try:
        line = _dumps(record)
    except (ValueError, RecursionError, TypeError):  # circular or too deep: keep usage, cut content
        line = ""
    if not line or len(line) > max_content_bytes:
        original = _content_bytes(messages) + _content_bytes(response)
        keep = max(1024, max_content_bytes // 4)
        record["messages"] = _truncated(messages, original, keep)
        record["response"] = _truncated(response, original, keep)
        record["trunc"], record["orig"] = True, original
        try:
            line = _dumps(record)
        except (ValueError, RecursionError, TypeError):
            record["meta"] = {"unserialisable": clean_text(_text(record["meta"])[:keep])}
            line = _dumps(record)
    return line.encode("ascii") + b"\n"


def decode(line: bytes) -> UsageEvent:
    """The event of one journal line (raises ValueError if the line is not a record)."""
    r = json.loads(line)
    if not isinstance(r, dict) or not r.get("id"):
        raise ValueError("not a llmtally spool record")
    created = dt.datetime.fromisoformat(r["at"])
    meta = r.get("meta")
    return UsageEvent(
        litellm_call_id=str(r["id"]),
        model=str(r.get("model") or "unknown"),
        status=cast(Status, r.get("status")),  # an unknown status is refused by the database: quarantined
        provider=str(r.get("provider") or "unknown"),
        user_profile_id=r.get("user"),
        end_user=r.get("end_user"),
        session_id=r.get("session"),
        prompt_tokens=r.get("pt") or 0,
        completion_tokens=r.get("ct") or 0,
        total_tokens=r.get("tt"),
        reported_cost=r.get("cost"),
        messages=r.get("messages"),
        response=r.get("response"),
        error=r.get("error"),
        error_type=r.get("error_type"),
        latency_ms=r.get("latency"),
        first_token_ms=r.get("ft"),
        stream=bool(r.get("stream")),
        metadata=meta if isinstance(meta, dict) else ({} if meta is None else {"value": meta}),
        created_at=created if created.tzinfo else created.replace(tzinfo=dt.UTC),
        content_truncated=bool(r.get("trunc")),
        content_original_bytes=r.get("orig"),
        call_key=r.get("key"),
        attempt_key=r.get("ak"),
        trace_id=r.get("trace"),
        model_group=r.get("group"),
        model_id=r.get("mid"),
        api_base=r.get("base"),
        cache_hit=bool(r.get("hit")),
        saved_cost=r.get("saved"),
        usage_source=cast(UsageSource, r.get("src") or "provider"),
        cached_tokens=r.get("cat") or 0,
        cache_creation_tokens=r.get("ccr") or 0,
        reasoning_tokens=r.get("rt") or 0,
        audio_tokens=r.get("aud") or 0,
    )


# -- segments ------------------------------------------------------------------------------------
@dataclass
class Segment:
    """One journal file and how far the writer got in it."""

    path: Path
    fd: int
    size: int = 0  # bytes appended (known complete lines)
    done: int = 0  # bytes whose events are committed
    events: int = 0  # events appended and not yet committed
    sealed: bool = False
    done_fd: int | None = None  # the open done mark, once something was committed

    @property
    def done_path(self) -> Path:
        return done_path(self.path)

    def mark_done(self, done: int) -> None:
        """Record (without fsync: a mark that lags only repeats rows, never loses any) that ``done`` bytes are in."""
        self.done = done
        if self.done_fd is None:
            self.done_fd = os.open(self.done_path, os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self.done_fd, b"%020d" % done, 0)

    def forget_done(self) -> None:
        if self.done_fd is not None:
            os.close(self.done_fd)
            self.done_fd = None
        with contextlib.suppress(FileNotFoundError):
            self.done_path.unlink()


def done_path(segment_path: Path) -> Path:
    return segment_path.with_name(segment_path.name + DONE_SUFFIX)


def read_done(segment_path: Path, size: int) -> int:
    """The committed bytes of a segment as its done mark says (0 without a readable mark)."""
    try:
        return max(0, min(int(done_path(segment_path).read_bytes() or b"0"), size))
    except (OSError, ValueError):
        return 0


@dataclass
class Chunk:
    """Consecutive records of one segment, read for one batch."""

    segment: Segment | None
    lines: list[bytes] = field(default_factory=list)
    end: int = 0


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def read_lines(fd: int, start: int, end: int | None, *, max_lines: int, max_bytes: int) -> tuple[list[bytes], int]:
    """Whole lines from ``start`` (up to ``end``, or the end of the file): the lines and the offset after them."""
    lines: list[bytes] = []
    offset = start  # the file offset of buffer[0]
    buffer = b""
    taken = 0
    limit = end if end is not None else os.fstat(fd).st_size
    while offset + len(buffer) < limit and len(lines) < max_lines:
        chunk = os.pread(fd, min(1 << 20, limit - offset - len(buffer)), offset + len(buffer))
        if not chunk:
            break
        buffer += chunk
        # Cut lines by position: slicing the rest of a 1 MB buffer off after each line would copy it once
        # per line, with the interpreter lock held (the callers' threads wait for it meanwhile).
        position = 0
        while len(lines) < max_lines:
            newline = buffer.find(b"\n", position)
            if newline < 0:
                break
            line = buffer[position : newline + 1]
            position = newline + 1
            lines.append(line)
            taken += len(line)
            if taken >= max_bytes:
                return lines, offset + position
        buffer = buffer[position:]
        offset += position
    return lines, offset


class Spool:
    """This process's journal segments, plus the claiming of dead processes' segments."""

    def __init__(
        self, directory: Path, *, max_bytes: int = 1 << 30, segment_bytes: int = 64 << 20, fsync: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._pending_bytes = 0
        self._full_logged = False

    # -- this process's journal ----------------------------------------------------------------
    def open(self) -> Spool:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if not self._segments:
                self._segments.append(self._new_segment())
        return self

    def _new_segment(self) -> Segment:
        name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        temp = self.directory / f".{name}.tmp"
        fd = os.open(temp, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        # Lock before the file gets its claimable name: no other process can take it as orphaned.
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = self.directory / f"{name}{SUFFIX}"
        os.rename(temp, path)
        return Segment(path, fd)

    def append(self, line: bytes) -> None:
        """Journal one encoded event (raises SpoolFull at the size limit)."""
        with self._lock:
            if not self._segments:
                raise SpoolFull("the llmtally spool is closed: start the ledger first")
            if self._pending_bytes + len(line) > self.max_bytes:
                metrics.SPOOL_FULL.inc()
                raise SpoolFull(
                    f"the llmtally spool in {self.directory} is full ({self._pending_bytes} bytes waiting, limit"
                    f" {self.max_bytes}): the database has not accepted writes for a while; usage is not being"
                    " recorded until it does (raise LLMTALLY_SPOOL_MAX_BYTES to wait longer)"
                )
            segment = self._segments[-1]
            if segment.size >= self.segment_bytes:
                segment.sealed = True
                segment = self._new_segment()
                self._segments.append(segment)
            written = os.write(segment.fd, line)
            while written < len(line):  # only on a nearly full disk; finish or fail loudly
                more = os.write(segment.fd, line[written:])
                if more <= 0:
                    raise OSError(f"could not write the llmtally spool {segment.path}")
                written += more
            if self.fsync:
                os.fsync(segment.fd)
            segment.size += len(line)
            segment.events += 1
            self._pending_bytes += len(line)
        metrics.SPOOL_DEPTH.inc()

    def read(self, *, max_lines: int, max_bytes: int) -> Chunk | None:
        """The next records not yet committed, from the oldest segment that has some."""
        with self._lock:
            for segment in self._segments:
                if segment.done < segment.size:
                    start, end = segment.done, segment.size
                    break
            else:
                return None
        lines, offset = read_lines(segment.fd, start, end, max_lines=max_lines, max_bytes=max_bytes)
        return Chunk(segment, lines, offset)

    def commit(self, chunk: Chunk) -> None:
        """Everything in ``chunk`` is in the database: forget it, and drop what is all committed."""
        segment = chunk.segment
        if segment is None:
            return
        with self._lock:
            segment.done = chunk.end
            segment.events -= len(chunk.lines)
            self._pending_bytes -= sum(len(x) for x in chunk.lines)
            if segment.done >= segment.size:
                if segment.sealed:
                    self._drop(segment)
                else:  # the live segment, all written: start it over
                    segment.forget_done()
                    os.ftruncate(segment.fd, 0)
                    segment.size = segment.done = segment.events = 0
            else:
                segment.mark_done(segment.done)
        metrics.SPOOL_DEPTH.dec(len(chunk.lines))

    def _drop(self, segment: Segment) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment.path.unlink()  # unlink before unlocking: nobody can claim a deleted file
        segment.forget_done()
        os.close(segment.fd)
        self._segments.remove(segment)

    @property
    def pending_events(self) -> int:
        with self._lock:
            return sum(s.events for s in self._segments)

    def close(self) -> int:
        """Release this process's segments; delete the empty ones. Returns events left to replay later."""
        left = 0
        with self._lock:
            for segment in list(self._segments):
                left += segment.events
                if segment.done >= segment.size:
                    self._drop(segment)
                else:
                    if segment.done_fd is not None:
                        os.close(segment.done_fd)
                    os.close(segment.fd)  # the lock goes with it: the next start replays the rest
                    self._segments.remove(segment)
            self._pending_bytes = 0
        if left:
            metrics.SPOOL_DEPTH.dec(left)
        return left

    def owns(self, path: Path) -> bool:
        with self._lock:
            return any(s.path == path for s in self._segments)

    # -- other processes' segments --------------------------------------------------------------
    def claim_orphans(self) -> Iterator[Segment]:
        """Segments of processes that are gone, locked by us, oldest first. Delete with :meth:`release`."""
        yield from claim_orphans(self.directory, skip=self.owns)

    @staticmethod
    def release(segment: Segment, *, delete: bool) -> None:
        if delete:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
            segment.forget_done()
        elif segment.done_fd is not None:
            os.close(segment.done_fd)
        os.close(segment.fd)


def segment_paths(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX))


def claim_orphans(directory: Path, *, skip: Any = None) -> Iterator[Segment]:
    for path in segment_paths(directory):
        if skip is not None and skip(path):
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        if not _lock(fd):  # a live process holds it, or another process is replaying it
            os.close(fd)
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # replayed and deleted by another process while we opened it
            os.close(fd)
            continue
        size = os.fstat(fd).st_size
        yield Segment(path, fd, size=size, done=read_done(path, size), sealed=True)


@dataclass
class SegmentInfo:
    path: Path
    bytes: int
    events: int
    live: bool


def status(directory: Path) -> list[SegmentInfo]:
    """What waits in the spool: each segment, its size and records, and whether its process is alive."""
    infos: list[SegmentInfo] = []
    for path in segment_paths(directory):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            live = not _lock(fd)
            size = os.fstat(fd).st_size
            events = 0
            offset = read_done(path, size)  # committed before the process stopped: not left
            while offset < size:
                chunk = os.pread(fd, 1 << 20, offset)
                if not chunk:
                    break
                events += chunk.count(b"\n")
                offset += len(chunk)
        finally:
            os.close(fd)
        infos.append(SegmentInfo(path, size, events, live))
    return infos
