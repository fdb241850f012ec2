"""Part 1: ingest throughput of the ledger writer, against the original design's path and the ceiling.

- ledger: a separate writer process (as an app instance would be) queues events with
  ``Ledger.record`` as fast as it can build them; the time runs until ``flush_sync`` returns, i.e.
  until every event is committed to request_logs with the unique key, every index, the
  statement-level trigger, the counters and the rollup.
- original: the same kind of rows, one INSERT per event in its own transaction, with a per-row
  trigger updating ``user_profiles``.
- ceiling: the same rows (already built) COPied in one statement into a table with no index, no
  constraint and no trigger.

The three sides alternate within each repetition; ratios are taken per repetition, then the median.
Then 1, 4 and 16 writer processes write into one database at once.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    Report,
    Server,
    check_invariants,
    fmt_rate,
    fmt_ratio,
    median,
    read_sql,
)

MARK = "BENCH "
COLUMNS = (
    "user_profile_id, end_user, session_id, litellm_call_id, model, provider, prompt_tokens, completion_tokens,"
    " tokens_used, total_cost, cost_status, messages, response, status, error, error_type, latency_ms, stream,"
    " metadata, created_at"
)
INSERT_ORIGINAL = f"insert into request_logs ({COLUMNS}) values ({', '.join(['%s'] * 20)})"  # noqa: S608
COPY_BARE = f"copy bare_logs ({COLUMNS}) from stdin"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _lifetime_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


class RssSampler:
    """The highest RSS seen while running (sampled every 10 ms); the lifetime peak would include imports."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_mb())

    def __enter__(self) -> RssSampler:
        self.peak = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


# -- the writer process ------------------------------------------------------------------------------
def worker(url: str, users: int, seed: int, batch_size: int, content: str, path: str) -> None:
    """Serve `run N` lines from stdin: record N events through a Ledger and report the timing.

    ``path`` "python" makes the writer decode every spool record in Python and COPY typed rows, as it
    did before PostgreSQL read the records itself ("lines", the default): the before/after comparison.
    """
    logging.basicConfig(level=logging.ERROR)
    from bench.workload import Workload

    import llmtally
    from llmtally import Ledger, Settings

    if path == "python":  # every batch takes the decoding path
        try:
            from llmtally.ledger import postgres_sink
        except ImportError:  # a source tree from before the sinks, where the writer decided
            from llmtally.ledger import writer as writer_module

            setattr(writer_module, "_fast", lambda line: False)  # noqa: B010
        else:
            postgres_sink.postgres_reads_as_is = lambda line: False

    workload = Workload(users=users, seed=seed)
    options: dict[str, Any] = {"batch_size": batch_size, "content": content}
    ledger = Ledger(url, settings=Settings(**options)).start_sync()
    t0 = time.perf_counter()
    probe = [workload.event(i) for i in range(2000)]
    produce_rate = len(probe) / (time.perf_counter() - t0)
    del probe
    _say(
        {
            "ready": True,
            "source": str(Path(llmtally.__file__).parents[1]),
            "rss_mb": _rss_mb(),
            "lifetime_peak_mb": _lifetime_peak_rss_mb(),
            "produce_rate": produce_rate,
        }
    )
    made = 0
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        if parts[0] != "run":
            continue
        n = int(parts[1])
        with RssSampler() as sampler:
            start = time.time()
            for i in range(n):
                ledger.record(workload.event(made + i))
            made += n
            assert ledger.flush_sync(timeout=None)
            end = time.time()
        _say({"events": n, "start": start, "end": end, "peak_rss_mb": sampler.peak, "rss_mb": _rss_mb()})
    stats = ledger.stats
    ledger.close_sync()
    _say(
        {
            "closed": True,
            "written": stats.written,
            "batches": stats.batches,
            "failed": stats.failed_attempts,
        }
    )


def _say(data: dict[str, Any]) -> None:
    print(MARK + json.dumps(data), flush=True)


class Writer:
    """A writer process driven over its stdin."""

    def __init__(
        self,
        url: str,
        *,
        users: int,
        seed: int,
        batch_size: int = 500,
        content: str = "full",
        path: str = "lines",
        source: Path | None = None,
    ) -> None:
        """``source``: another llmtally source tree (its ``src`` is imported instead of this one's)."""
        args = [str(a) for a in (url, users, seed, batch_size, content, path)]
        env = dict(os.environ)  # the writer imports the llmtally of its own tree, whatever is installed
        env["PYTHONPATH"] = os.pathsep.join([str((source or ROOT) / "src"), *filter(None, [env.get("PYTHONPATH")])])
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "worker", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready: dict[str, Any] | None = None

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])  # type: ignore[no-any-return]
        raise RuntimeError(f"writer process ended (exit {self.proc.wait()})")

    def wait_ready(self) -> dict[str, Any]:
        if self.ready is None:
            self.ready = self.read()
        return self.ready

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> dict[str, Any]:
        self.send("quit")
        closing = self.read()
        self.proc.wait(timeout=60)
        return closing


# -- the baselines ---------------------------------------------------------------------------------
def build_rows(workload: Any, n: int, start: int, *, content: str = "full") -> list[tuple[Any, ...]]:
    from llmtally.ledger.rows import event_row

    return [event_row(0, workload.event(start + i), store_content=content == "full")[1:21] for i in range(n)]


def insert_one_by_one(url: str, rows: list[tuple[Any, ...]]) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        start = time.perf_counter()
        for row in rows:
            conn.execute(INSERT_ORIGINAL, row, prepare=True)
        return time.perf_counter() - start


def copy_bare(url: str, rows: list[tuple[Any, ...]]) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        start = time.perf_counter()
        with conn.transaction(), conn.cursor().copy(COPY_BARE) as copy:
            for row in rows:
                copy.write_row(row)
        return time.perf_counter() - start


def create_users(url: str, users: list[str], *, original: bool) -> None:
    import psycopg

    table = "user_profiles" if original else "public.user_profiles"
    with psycopg.connect(url) as conn, conn.cursor().copy(f"copy {table} (user_id, email) from stdin") as copy:
        for user in users:
            copy.write_row((user, f"{user}@example.com"))


# -- the benchmark -------------------------------------------------------------------------------------
@dataclass
class IngestConfig:
    reps: int = 3
    ledger_events: int = 30_000
    original_events: int = 2_000
    users: int = 2_000
    contents: tuple[str, ...] = ("full", "none")
    concurrency: tuple[int, ...] = (1, 4, 16)
    concurrent_events: int = 48_000
    concurrent_reps: int = 1
    batch_size: int = 500
    memory_events: int = 15_000
    memory: bool = True


def _apply_storage(source_url: str, target_url: str, tables: tuple[str, ...]) -> None:
    """Give the comparison tables the same column storage and compression as the ledger's request_logs."""
    import psycopg

    with psycopg.connect(source_url) as conn:
        columns = conn.execute(
            "select attname, attstorage, attcompression from pg_attribute"
            " where attrelid = 'public.request_logs'::regclass and attnum > 0 and not attisdropped"
            " and attstorage <> 'p'"
        ).fetchall()
    storage = {"x": "extended", "e": "external", "m": "main"}
    with psycopg.connect(target_url, autocommit=True) as conn:
        for table in tables:
            present = {
                row[0]
                for row in conn.execute(
                    "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0", (table,)
                )
            }
            for name, kind, compression in columns:
                if name == "id" or name not in present:  # the original design has fewer columns
                    continue
                conn.execute(f"alter table {table} alter column {name} set storage {storage[kind]}")
                if compression:
                    method = {"p": "pglz", "l": "lz4"}[compression]
                    conn.execute(f"alter table {table} alter column {name} set compression {method}")


def run(srv: Server, report: Report, cfg: IngestConfig) -> dict[str, Any]:
    import psycopg
    from bench.workload import Workload

    report.section("1. Ingest throughput")
    report.line(
        f"{cfg.reps} repetitions, alternating ledger / ledger decoding in Python / original / ceiling,"
        f" for content={'/'.join(cfg.contents)};"
        f" per repetition: ledger {cfg.ledger_events:,} events, original {cfg.original_events:,},"
        f" ceiling {cfg.ledger_events:,}; {cfg.users:,} users (Zipf); batch_size={cfg.batch_size}"
    )
    ledger_url = srv.create_database("ingest")
    base_url = srv.create_database("original", migrated=False)
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(read_sql("original_ingest.sql").encode())
    _apply_storage(ledger_url, base_url, ("request_logs", "bare_logs"))
    workload = Workload(users=cfg.users, seed=7)
    create_users(ledger_url, workload.users, original=False)
    create_users(base_url, workload.users, original=True)

    writers = {
        content: Writer(ledger_url, users=cfg.users, seed=11 + n, batch_size=cfg.batch_size, content=content)
        for n, content in enumerate(cfg.contents)
    }
    python_writers = {
        content: Writer(
            ledger_url, users=cfg.users, seed=21 + n, batch_size=cfg.batch_size, content=content, path="python"
        )
        for n, content in enumerate(cfg.contents)
    }
    ready = {content: w.wait_ready() for content, w in writers.items()}
    for w in python_writers.values():
        w.wait_ready()
    rows_made = 0
    rates: dict[str, dict[str, list[float]]] = {
        c: {"ledger": [], "python": [], "original": [], "ceiling": []} for c in cfg.contents
    }
    peaks: list[float] = []
    for rep in range(cfg.reps):
        for content in cfg.contents:
            sides = rates[content]
            writers[content].send(f"run {cfg.ledger_events}")
            result = writers[content].read()
            sides["ledger"].append(result["events"] / (result["end"] - result["start"]))
            peaks.append(result["peak_rss_mb"])

            python_writers[content].send(f"run {cfg.ledger_events}")
            result = python_writers[content].read()
            sides["python"].append(result["events"] / (result["end"] - result["start"]))

            rows = build_rows(workload, cfg.original_events, rows_made, content=content)
            rows_made += len(rows)
            sides["original"].append(len(rows) / insert_one_by_one(base_url, rows))

            rows = build_rows(workload, cfg.ledger_events, rows_made, content=content)
            rows_made += len(rows)
            sides["ceiling"].append(len(rows) / copy_bare(base_url, rows))
            del rows
            report.line(
                f"  rep {rep + 1}, content={content}: ledger {fmt_rate(sides['ledger'][-1])}/s,"
                f" decoding in Python {fmt_rate(sides['python'][-1])}/s,"
                f" original {fmt_rate(sides['original'][-1])}/s, ceiling {fmt_rate(sides['ceiling'][-1])}/s"
            )
    closing = {content: w.close() for content, w in writers.items()}
    for w in python_writers.values():
        w.close()

    summary: dict[str, Any] = {}
    table = []
    for content in cfg.contents:
        sides = rates[content]
        vs_original = median([a / b for a, b in zip(sides["ledger"], sides["original"], strict=True)])
        vs_ceiling = median([a / b for a, b in zip(sides["ledger"], sides["ceiling"], strict=True)])
        vs_python = median([a / b for a, b in zip(sides["ledger"], sides["python"], strict=True)])
        python_vs_ceiling = median([a / b for a, b in zip(sides["python"], sides["ceiling"], strict=True)])
        summary[content] = {
            "events_per_s": {k: median(v) for k, v in sides.items()},
            "ledger_vs_original": vs_original,
            "ledger_vs_ceiling": vs_ceiling,
            "ledger_vs_python_path": vs_python,
            "python_path_vs_ceiling": python_vs_ceiling,
        }
        table.append(
            [
                content,
                fmt_rate(median(sides["ledger"])),
                fmt_rate(median(sides["original"])),
                fmt_rate(median(sides["ceiling"])),
                fmt_ratio(vs_original),
                f"{vs_ceiling:.0%}",
                fmt_rate(median(sides["python"])),
                fmt_ratio(vs_python),
                f"{python_vs_ceiling:.0%}",
            ]
        )
    report.table(
        [
            "content",
            "ledger /s",
            "original /s",
            "ceiling /s",
            "ledger/original (≥ 20×)",
            "ledger/ceiling (≥ 40 %)",
            "decoding in Python /s",
            "ledger/decoding in Python",
            "decoding in Python/ceiling",
        ],
        table,
    )
    report.line(
        "ledger: COPY into a temp stage, INSERT … ON CONFLICT DO NOTHING, 4 indexes, statement-level trigger"
        " (counters + rollup); original: one INSERT per event in its own transaction, per-row trigger;"
        " ceiling: one COPY of the same rows into a table with no index, constraint or trigger"
    )
    first = cfg.contents[0]
    report.line(
        f"event building alone (the producer): {fmt_rate(ready[first]['produce_rate'])} events/s;"
        f" writer RSS after start (LiteLLM imported) {ready[first]['rss_mb']:.0f} MB,"
        f" peak during these runs {max(peaks):.0f} MB"
    )
    for content, c in closing.items():
        report.line(
            f"writer content={content}: {c['written']:,} rows in {c['batches']:,} batches, {c['failed']} failed"
        )
    report.check("ingest invariants (ledger database)", check_invariants(ledger_url))
    with psycopg.connect(base_url) as conn:
        logged, counted = conn.execute(
            "select (select count(*) from request_logs), (select sum(request_count) from user_profiles)"
        ).fetchone()  # type: ignore[misc]
    report.line(f"original database: {logged:,} rows, its counters sum to {counted:,}")
    srv.drop_database(base_url)

    if cfg.memory:
        summary["memory"] = run_memory(ledger_url, report, cfg)
    srv.drop_database(ledger_url)
    summary["concurrency"] = run_concurrency(srv, report, cfg)
    return summary


def run_memory(url: str, report: Report, cfg: IngestConfig) -> dict[str, float]:
    """Peak RSS of a writer process at full rate: the producer outruns the database, the spool holds the rest."""
    report.line("\npeak memory of one writer process at full rate (content=full; events wait in the spool on disk):")
    writer = Writer(url, users=cfg.users, seed=37, batch_size=cfg.batch_size)
    ready = writer.wait_ready()
    writer.send(f"run {cfg.memory_events}")
    result = writer.read()
    writer.close()
    report.table(
        ["events", "RSS after start (peak while importing)", "peak RSS writing (≤ 300 MB)", "events/s"],
        [
            [
                f"{cfg.memory_events:,}",
                f"{ready['rss_mb']:.0f} MB ({ready['lifetime_peak_mb']:.0f})",
                f"{result['peak_rss_mb']:.0f} MB",
                fmt_rate(cfg.memory_events / (result["end"] - result["start"])),
            ]
        ],
    )
    return {"events": float(cfg.memory_events), "peak_rss_mb": result["peak_rss_mb"]}


def run_concurrency(srv: Server, report: Report, cfg: IngestConfig) -> dict[int, float]:
    from bench.workload import Workload

    url = srv.create_database("concurrent")
    create_users(url, Workload(users=cfg.users, seed=7).users, original=False)
    most = max(cfg.concurrency)
    report.line(
        f"\n{cfg.concurrency} writer processes on one database, {cfg.concurrent_events:,} events per run in total,"
        f" {cfg.concurrent_reps} runs each, alternating (starting {most} processes, LiteLLM imported in each)"
    )
    writers = [Writer(url, users=cfg.users, seed=100 + w) for w in range(most)]
    for w in writers:
        w.wait_ready()
    rates: dict[int, list[float]] = {k: [] for k in cfg.concurrency}
    peaks: dict[int, float] = {k: 0.0 for k in cfg.concurrency}
    for _ in range(cfg.concurrent_reps):
        for k in cfg.concurrency:
            share = cfg.concurrent_events // k
            for w in writers[:k]:
                w.send(f"run {share}")
            results = [w.read() for w in writers[:k]]
            span = max(r["end"] for r in results) - min(r["start"] for r in results)
            rates[k].append(share * k / span)
            peaks[k] = max(peaks[k], *(r["peak_rss_mb"] for r in results))
    for w in writers:
        w.close()
    one = median(rates[cfg.concurrency[0]])
    report.table(
        ["writer processes", "median events/s (all processes)", f"vs {cfg.concurrency[0]}", "peak RSS per process"],
        [
            [k, fmt_rate(median(rates[k])), fmt_ratio(median(rates[k]) / one), f"{peaks[k]:.0f} MB"]
            for k in cfg.concurrency
        ],
    )
    report.check("concurrent writers invariants", check_invariants(url))
    srv.drop_database(url)
    return {k: median(v) for k, v in rates.items()}


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "worker":
    worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), *sys.argv[6:8])
