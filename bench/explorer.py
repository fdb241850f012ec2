"""Part 6: the request explorer at scale: the time of one page for each main filter shape.

The rows come from the analytics generator (bench/analytics.py: Zipf users, 50 models, 13 months with
usage growing, 2 % failures, 0.5 % cancelled, content on every row), grown in steps. For each size and
shape the page is asked ``calls`` times after a warm-up, as the server (/admin/requests) and, for the
per-user shapes, as the user under row-level security (/usage/requests). Printed: p50 and p95 per shape.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.analytics import AnalyticsConfig, describe, grow, setup
from bench.common import Report, Server, check_invariants, fmt_ms, median, percentile

from llmtally.analytics import Analytics
from llmtally.analytics.explorer import MAX_PAGE, ExplorerFilter, RequestExplorer
from llmtally.db import Database


@dataclass
class ExplorerConfig:
    sizes: list[int] = field(default_factory=lambda: [1_000_000])
    calls: int = 20
    users: int = 10_000
    chunk: int = 250_000

    @classmethod
    def smoke(cls) -> ExplorerConfig:
        return cls(sizes=[20_000], calls=2, users=300, chunk=10_000)


def _time(fn: Callable[[], Any], calls: int) -> list[float]:
    fn()  # warm-up: plans, caches, connections
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def shapes(facts: dict[str, Any]) -> dict[str, tuple[ExplorerFilter, str | None]]:
    """Filter shapes of the explorer: (filter, viewer); viewer None is the administrator's page."""
    today = dt.datetime.now(dt.UTC).date()
    month = today - dt.timedelta(days=29)
    week = today - dt.timedelta(days=6)
    heavy, middle = facts["heaviest"], facts["median"]
    return {
        "newest, last 30 days (the default)": (ExplorerFilter(since=month), None),
        "newest, page 200": (ExplorerFilter(since=month, page=MAX_PAGE), None),
        "one model, 30 days": (ExplorerFilter(since=month, model="gpt-4o-mini"), None),
        "failures, 30 days": (ExplorerFilter(since=month, status="failure"), None),
        "cancelled, 30 days": (ExplorerFilter(since=month, status="cancelled"), None),
        "by cost, one day": (ExplorerFilter(since=today, until=today, sort="cost"), None),
        "by cost, 7 days": (ExplorerFilter(since=week, sort="cost"), None),
        "by latency, 30 days": (ExplorerFilter(since=month, sort="latency"), None),
        "text in prompt or reply, 7 days": (ExplorerFilter(since=week, text="refactor the"), None),
        "heaviest user, newest": (ExplorerFilter(since=month, user_id=heavy), None),
        "heaviest user by cost, 30 days": (ExplorerFilter(since=month, user_id=heavy, sort="cost"), None),
        "heaviest user, own page (RLS)": (ExplorerFilter(since=month), heavy),
        "heaviest user by tokens, own page (RLS)": (ExplorerFilter(since=month, sort="tokens"), heavy),
        "median user, own page (RLS)": (ExplorerFilter(since=month), middle),
        # the generator's calls name their user as end user too, as the gateway records a key's own calls
        "heaviest end user, newest": (ExplorerFilter(since=month, end_user=heavy), None),
        "median end user, newest": (ExplorerFilter(since=month, end_user=middle), None),
    }


def measure(url: str, cfg: ExplorerConfig, facts: dict[str, Any], report: Report) -> dict[str, Any]:
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    today = dt.datetime.now(dt.UTC).date()
    with Database(url, max_size=2) as db:
        for name, (where, viewer) in shapes(facts).items():
            explorer = RequestExplorer(db, with_content=True, viewer=viewer)
            found = len(explorer.page(where).rows)
            t = _time(lambda e=explorer, w=where: e.page(w), cfg.calls)  # type: ignore[misc]
            results[name] = {"p50_ms": median(t) * 1000, "p95_ms": percentile(t, 95) * 1000, "rows": found}
            rows.append([name, str(found), fmt_ms(median(t)), fmt_ms(percentile(t, 95))])
        everyone = RequestExplorer(db, with_content=True)
        newest = everyone.page(ExplorerFilter(since=today - dt.timedelta(days=29))).rows
        if newest:
            t = _time(lambda: everyone.detail(newest[0].id), cfg.calls)
            results["drill-down"] = {"p50_ms": median(t) * 1000, "p95_ms": percentile(t, 95) * 1000}
            rows.append(["drill-down (one call and its attempts)", "1", fmt_ms(median(t)), fmt_ms(percentile(t, 95))])
        analytics = Analytics(db)
        for label, since in (("7 days", today - dt.timedelta(days=6)), ("30 days", today - dt.timedelta(days=29))):
            t = _time(lambda s=since: analytics.latency_percentiles(s), max(2, cfg.calls // 4))  # type: ignore[misc]
            results[f"latency percentiles, {label}"] = {"p50_ms": median(t) * 1000, "p95_ms": percentile(t, 95) * 1000}
            rows.append([f"latency percentiles, {label} (dashboard)", "", fmt_ms(median(t)), fmt_ms(percentile(t, 95))])
    report.table(["explorer page", "rows", "p50 ms", "p95 ms"], rows)
    return results


def run(srv: Server, report: Report, cfg: ExplorerConfig) -> dict[str, Any]:
    report.section("6. Request explorer at scale")
    gen = AnalyticsConfig(sizes=cfg.sizes, users=cfg.users, chunk=cfg.chunk)
    report.line(
        f"sizes {', '.join(f'{s:,}' for s in cfg.sizes)} rows (the analytics generator, {cfg.users:,} users);"
        f" {cfg.calls} pages per shape after a warm-up"
    )
    url = srv.create_database("explorer")
    setup(url, gen)
    out: dict[str, Any] = {}
    have = 0
    for size in cfg.sizes:
        report.line(f"\n-- {size:,} rows --")
        grow(url, have, size, gen, report)
        have = size
        facts = describe(url)
        report.line(
            f"  {facts['rows']:,} request_logs rows ({facts['request_logs_size']}); heaviest user"
            f" {facts['heaviest_rows']:,} rows, median user {facts['median_rows']:,} rows"
        )
        report.check(f"explorer invariants at {size:,} rows", check_invariants(url))
        out[str(size)] = measure(url, cfg, facts, report)
    srv.drop_database(url)
    return out
