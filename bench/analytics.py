"""Part 3: analytics at scale, against the same questions answered from request_logs on demand.

The generator fills request_logs inside PostgreSQL (INSERT … SELECT over generate_series, triggers and
foreign keys off, secondary indexes dropped and rebuilt after), adds the rows' rollup and counters
with set-based SQL, then checks the invariants. Sizes grow in steps (1 M, then 3 M, …), each step
adding rows with the same distribution, and every step is measured:

- the four per-user analytics functions (``Analytics``, as the server and as the user under RLS)
  for the heaviest user, a median user and a new user;
- the dashboard queries: top users this month, cost by model by day for 90 days, error rate by model;
- the same questions aggregated from request_logs (the original way), alternating with the above.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from bench.common import (
    Report,
    Server,
    check_invariants,
    fmt_ms,
    fmt_ratio,
    median,
    percentile,
    read_sql,
)
from psycopg.rows import dict_row

from llmtally.analytics import Analytics
from llmtally.analytics.service import month_split
from llmtally.db import Database

PROVIDERS = {
    "openai": ["gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o3-mini", "o4-mini",
               "gpt-5", "gpt-5-mini", "gpt-5-nano"],
    "anthropic": ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku", "claude-3-7-sonnet",
                  "claude-sonnet-4", "claude-opus-4"],
    "gemini": ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
               "gemini-2.0-flash-lite", "gemini-1.5-pro", "gemini-1.5-flash"],
    "mistral": ["mistral-large-latest", "mistral-medium-latest", "mistral-small-latest", "codestral-latest",
                "open-mistral-nemo", "pixtral-large-latest", "ministral-8b-latest"],
    "groq": ["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "gemma2-9b-it", "qwen-qwq-32b",
             "deepseek-r1-distill-llama-70b", "llama-4-scout", "llama-4-maverick", "mixtral-8x7b-32768",
             "moonshotai/kimi-k2-instruct"],
    "bedrock": ["amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0", "cohere.command-r-v1:0",
                "meta.llama3-70b-instruct-v1:0", "internal-fine-tune", "ai21.jamba-1-5-large-v1:0",
                "mistral.mistral-large-2407-v1:0", "amazon.titan-text-premier-v1:0"],
}  # fmt: skip
UNPRICED = "internal-fine-tune"
MONTHS = 13
NEW_USER = "github_new_user_42"


@dataclass
class AnalyticsConfig:
    sizes: list[int]
    users: int = 10_000
    zipf_s: float = 0.9
    rounds: int = 5  # rounds of alternation per question
    calls_per_round: int = 20  # llmtally calls per round (one original call per round)
    dashboard_calls_per_round: int = 6
    monthly_before: bool = True  # also time user_monthly_usage's former query (through the view)
    chunk: int = 250_000
    parallel: int = 2
    seed: float = 0.42

    @classmethod
    def smoke(cls) -> AnalyticsConfig:
        return cls(
            sizes=[20_000, 40_000], users=300, rounds=2, calls_per_round=3, dashboard_calls_per_round=2, chunk=10_000
        )


@dataclass
class Timings:
    new: list[float] = field(default_factory=list)
    rls: list[float] = field(default_factory=list)
    original: list[float] = field(default_factory=list)
    candidate: list[float] = field(default_factory=list)


# Key figures compared between the answer of llmtally's query before migration 0004 and the original query.
CANDIDATE_KEYS = {
    "user_token_breakdown": ("model", "provider", "requests", "cost"),
    "user_monthly_usage": ("month", "requests", "total_tokens", "total_cost"),
    "top users this month": ("user_id", "requests", "cost"),
    "cost by model by day, 90 days": ("day", "model", "requests", "cost"),
    "error rate by model, 30 days": ("model", "requests", "failures"),
}


# -- generation ----------------------------------------------------------------------------------------
def _named(text: str) -> dict[str, str]:
    parts = re.split(r"^-- ([a-z_]+) --$", text, flags=re.MULTILINE)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


GENERATE = _named(read_sql("generate.sql"))
ORIGINAL = _named(read_sql("original_queries.sql"))


def _zipf_bounds(n: int, s: float) -> list[float]:
    weights = [1 / (rank**s) for rank in range(1, n + 1)]
    total = sum(weights)
    return [0.0, *(c / total for c in itertools.accumulate(weights[:-1]))]


def _corpus() -> str:
    rnd = random.Random(5)
    text = (
        "summarise the meeting notes translate this paragraph into french explain the error in my sql query "
        "write a unit test for the parser draft an email to the customer about the delayed shipment compare "
        "postgres and sqlite for an embedded analytics use case what does this stack trace mean refactor the "
        "function below to avoid the nested loops give me three title ideas for the quarterly report"
    )
    words = text.split()
    return " ".join(rnd.choice(words) for _ in range(4000))[:20_000]


def setup(url: str, cfg: AnalyticsConfig) -> None:
    rnd = random.Random(3)
    models = [(m, p) for p, names in PROVIDERS.items() for m in names]
    assert len(models) == 50 and len(PROVIDERS) == 6
    rnd.shuffle(models)  # popularity order: index 1 is the most used model
    model_rows = []
    for idx, (model, provider) in enumerate(models, start=1):
        if model == UNPRICED:
            model_rows.append((idx, model, provider, None, None))
        else:
            inp = Decimal(rnd.choice([5, 10, 15, 25, 40, 60, 100, 150, 250, 300, 500, 1000, 1500])) / 10**8
            model_rows.append((idx, model, provider, inp, inp * rnd.choice([2, 3, 4, 5])))
    model_bounds = _zipf_bounds(len(models), 1.1)
    providers = ["google", "github", "azure-ad", "okta"]
    user_rows = []
    for idx in range(1, cfg.users + 1):
        favourite = 1 + min(49, int(rnd.paretovariate(1.2)) - 1)
        user_rows.append((idx, f"{providers[idx % 4]}_{10**17 + idx * 7_919_003}", favourite))
    now = dt.datetime.now(dt.UTC)
    t_start = now - dt.timedelta(days=round(MONTHS * 30.44))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(GENERATE["setup"].encode())
        with conn.cursor() as cur:
            cur.executemany("insert into bench_gen.models values (%s, %s, %s, %s, %s)", model_rows)
            with cur.copy("copy bench_gen.users (idx, user_id, favourite) from stdin") as copy:
                for row in user_rows:
                    copy.write_row(row)
            cur.execute(
                "insert into bench_gen.params values (%s, %s, %s, %s, %s)",
                (_zipf_bounds(cfg.users, cfg.zipf_s), model_bounds, _corpus(), t_start, now),
            )
            cur.execute(
                "insert into public.user_profiles (user_id, email, full_name, provider, created_at, last_seen_at)"
                " select user_id, 'user' || idx || '@example.com', 'User ' || idx, split_part(user_id, '_', 1),"
                " %s, %s from bench_gen.users",
                (t_start, now),
            )


def _secondary_indexes(conn: psycopg.Connection[Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    constraints = conn.execute(
        "select conname, pg_get_constraintdef(oid) from pg_constraint"
        " where conrelid = 'public.request_logs'::regclass and contype in ('u', 'x')"
        # a key another table's foreign key references (request_attempts.call_key) stays
        "   and not exists (select from pg_constraint f where f.contype = 'f' and f.conindid = pg_constraint.conindid)"
    ).fetchall()
    indexes = conn.execute(
        "select indexname, indexdef from pg_indexes where schemaname = 'public' and tablename = 'request_logs'"
        " and indexname not in (select conname from pg_constraint where conrelid = 'public.request_logs'::regclass)"
    ).fetchall()
    return constraints, indexes


def _insert_chunk(url: str, cfg: AnalyticsConfig, first: int, last: int) -> None:
    """Rows first..last in one transaction; the seed depends only on the chunk, so the data is reproducible."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")  # no triggers, no foreign-key checks
        conn.execute("set max_parallel_workers_per_gather = 0")
        # A different seed per chunk (golden-ratio steps), the same for the same chunk in every run.
        conn.execute("select setseed(%s)", ((cfg.seed + (first // cfg.chunk) * 0.6180339887498949) % 1.0,))
        conn.execute(GENERATE["rows"], {"first": first, "last": last})


def grow(url: str, have: int, want: int, cfg: AnalyticsConfig, report: Report) -> None:
    """Add rows have+1..want, their rollup and counters; rebuild the indexes; vacuum and analyze."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("set session_replication_role = replica")  # no triggers, no foreign-key checks
        conn.execute("set maintenance_work_mem = '1GB'")
        constraints, indexes = _secondary_indexes(conn)
        for name, _ in constraints:
            conn.execute(f'alter table public.request_logs drop constraint "{name}"')
        for name, _ in indexes:
            conn.execute(f'drop index public."{name}"')
        upto = int(conn.execute("select coalesce(max(id), 0) from public.request_logs").fetchone()[0])  # type: ignore[index]
        after = upto
        chunks = [(first, min(want, first + cfg.chunk - 1)) for first in range(have + 1, want + 1, cfg.chunk)]
        with ThreadPoolExecutor(max_workers=cfg.parallel) as pool:  # one session per core
            list(pool.map(lambda chunk: _insert_chunk(url, cfg, *chunk), chunks))
        inserted_at = time.perf_counter()
        upto = int(conn.execute("select max(id) from public.request_logs").fetchone()[0])  # type: ignore[index]
        for _name, definition in indexes:
            conn.execute(definition)
        for name, definition in constraints:
            conn.execute(f'alter table public.request_logs add constraint "{name}" {definition}')
        indexed_at = time.perf_counter()
        conn.execute(GENERATE["rollup_add"], {"after": after, "upto": upto})
        conn.execute(GENERATE["counters_add"], {"after": after, "upto": upto})
        conn.execute(GENERATE["monthly_and_totals"].encode())
        conn.execute("set session_replication_role = origin")
        if have == 0:  # the new user: a profile and a few calls today, through the real trigger
            conn.execute(
                "insert into public.user_profiles (user_id, email, created_at) values (%s, 'new@example.com', now())",
                (NEW_USER,),
            )
            conn.execute(
                "insert into public.request_logs (user_profile_id, litellm_call_id, model, provider, prompt_tokens,"
                " completion_tokens, tokens_used, total_cost, cost_status, status, latency_ms, created_at)"
                " select %s, 'new-' || i, 'gpt-4o-mini', 'openai', 100, 50, 150, 0.0001, 'priced', 'success', 900,"
                " now() - make_interval(mins => i) from generate_series(1, 5) i",
                (NEW_USER,),
            )
        rolled_at = time.perf_counter()
        conn.execute(
            "vacuum (analyze) public.request_logs, public.usage_daily, public.usage_monthly, public.usage_daily_totals,"
            " public.user_profiles"
        )
        conn.execute("checkpoint")
    done = time.perf_counter()
    report.line(
        f"  generated rows {have + 1:,}..{want:,}: insert {inserted_at - started:.0f} s"
        f" ({(want - have) / (inserted_at - started):,.0f} rows/s), indexes {indexed_at - inserted_at:.0f} s,"
        f" rollup + counters {rolled_at - indexed_at:.0f} s, vacuum + analyze {done - rolled_at:.0f} s"
    )


def describe(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            select (select count(*) from public.request_logs) as rows,
                   (select count(*) from public.usage_daily) as rollup_rows,
                   (select count(*) from public.user_profiles) as users,
                   (select count(distinct model) from public.usage_daily) as models,
                   (select count(distinct provider) from public.usage_daily) as providers,
                   (select round(avg((status = 'failure')::int), 4) from public.request_logs) as failure_rate,
                   (select min(created_at) from public.request_logs) as first_at,
                   (select pg_size_pretty(pg_total_relation_size('public.request_logs'))) as request_logs_size,
                   (select pg_size_pretty(pg_total_relation_size('public.usage_daily'))) as rollup_size,
                   (select count(*) from public.usage_monthly) as monthly_rows,
                   (select count(*) from public.usage_daily_totals) as totals_rows
            """
        )
        row = cur.fetchone()
        assert row is not None
        cur.execute(
            "select user_id, request_count from public.user_profiles where request_count > 0"
            " order by request_count desc, user_id"
        )
        ranked = cur.fetchall()
    row["heaviest"] = ranked[0]["user_id"]
    row["heaviest_rows"] = ranked[0]["request_count"]
    middle = ranked[len(ranked) // 2]
    row["median"] = middle["user_id"]
    row["median_rows"] = middle["request_count"]
    return row


# -- measurement ---------------------------------------------------------------------------------------
def _fetch(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def alternate(
    cfg: AnalyticsConfig,
    new: Callable[[], Any],
    original: Callable[[], Any] | None,
    rls: Callable[[], Any] | None = None,
    candidate: Callable[[], Any] | None = None,
    calls_per_round: int | None = None,
) -> tuple[Timings, Any, Any, Any]:
    """Rounds of: ``calls_per_round`` llmtally calls (and as many under RLS, and of llmtally's query
    before migration 0004), then one original call."""
    t = Timings()
    new_result = new()  # warm-up: plans, caches, connections
    if rls is not None:
        rls()
    candidate_result = candidate() if candidate is not None else None
    original_result = original() if original is not None else None
    for _ in range(cfg.rounds):
        for _ in range(calls_per_round or cfg.calls_per_round):
            seconds, new_result = _time(new)
            t.new.append(seconds)
            if rls is not None:
                t.rls.append(_time(rls)[0])
            if candidate is not None:
                seconds, candidate_result = _time(candidate)
                t.candidate.append(seconds)
        if original is not None:
            seconds, original_result = _time(original)
            t.original.append(seconds)
    return t, new_result, original_result, candidate_result


def measure(url: str, cfg: AnalyticsConfig, facts: dict[str, Any], report: Report) -> dict[str, Any]:
    today = dt.datetime.now(dt.UTC).date()
    month_start = today.replace(day=1)
    tomorrow = today + dt.timedelta(days=1)
    index = today.year * 12 + today.month - 1 - 11
    first_month = dt.date(index // 12, index % 12 + 1, 1)

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), dt.UTC)

    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    mismatches: list[str] = []
    db = Database(url, max_size=2).open()
    try:
        server = Analytics(db)
        users = {"heaviest": facts["heaviest"], "median": facts["median"], "new": NEW_USER}
        with psycopg.connect(url, autocommit=True) as conn:
            for who, user in users.items():
                mine = Analytics.for_user(db, user)
                per_user: dict[str, tuple[Callable[[Analytics], Any], Callable[[], Any] | None]] = {
                    "user_analytics": (
                        lambda a, u=user: a.user_analytics(u),
                        lambda u=user: _fetch(conn, ORIGINAL["user_analytics"], {"user_id": u}),
                    ),
                    "user_request_history": (lambda a, u=user: a.user_request_history(u, limit=50), None),
                    "user_token_breakdown": (
                        lambda a, u=user: a.user_token_breakdown(u),
                        lambda u=user: _fetch(conn, ORIGINAL["user_breakdown_by_model"], {"user_id": u}),
                    ),
                    "user_monthly_usage": (
                        lambda a, u=user: a.user_monthly_usage(u, months=12),
                        lambda u=user: _fetch(
                            conn, ORIGINAL["user_monthly"], {"user_id": u, "first_month": midnight(first_month)}
                        ),
                    ),
                }
                candidates: dict[str, Callable[[], Any]] = {  # llmtally's queries before migration 0004
                    "user_token_breakdown": lambda u=user: _fetch(
                        conn, ORIGINAL["before_user_breakdown_by_model"], {"user_id": u, "since": None, "until": None}
                    ),
                    "user_monthly_usage": lambda u=user: _fetch(
                        conn, ORIGINAL["before_user_monthly"], {"user_id": u, "first_month": first_month}
                    ),
                }
                for name, (call, original) in per_user.items():
                    t, got, expected, cand = alternate(
                        cfg,
                        lambda c=call: c(server),  # type: ignore[misc]
                        original,
                        lambda c=call, m=mine: c(m),  # type: ignore[misc]
                        candidates.get(name),
                    )
                    if expected is not None and not _same_answer(name, got, expected):
                        mismatches.append(f"{name}({who})")
                    if cand is not None and not _same_rows(CANDIDATE_KEYS[name], cand, expected):
                        mismatches.append(f"{name}({who}, previous query)")
                    key = f"{name}[{who}]"
                    results[key] = _summary(t)
                    rows.append(_row(f"{name} — {who}", t))
            # llmtally's previous query for each question: before migration 0008 (usage_monthly) for top
            # users, before migration 0004 (usage_daily only) for the others.
            candidate_dashboard: dict[str, Callable[[], Any]] = {
                "top users this month": lambda: _fetch(
                    conn, ORIGINAL["previous_top_users"], {**month_split(month_start, tomorrow, today), "limit": 10}
                ),
                "cost by model by day, 90 days": lambda: _fetch(
                    conn,
                    ORIGINAL["before_cost_by_model_by_day"],
                    {"since": today - dt.timedelta(days=89), "until": tomorrow},
                ),
                "error rate by model, 30 days": lambda: _fetch(
                    conn,
                    ORIGINAL["before_error_rate_by_model"],
                    {"since": today - dt.timedelta(days=29), "until": tomorrow},
                ),
            }
            dashboard: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
                "top users this month": (
                    lambda: server.top_users(since=month_start, until=tomorrow, limit=10),
                    lambda: _fetch(
                        conn,
                        ORIGINAL["top_users"],
                        {"since": midnight(month_start), "until": midnight(tomorrow), "limit": 10},
                    ),
                ),
                "cost by model by day, 90 days": (
                    lambda: server.daily_by_model(since=today - dt.timedelta(days=89), until=tomorrow),
                    lambda: _fetch(
                        conn,
                        ORIGINAL["cost_by_model_by_day"],
                        {"since": midnight(today - dt.timedelta(days=89)), "until": midnight(tomorrow)},
                    ),
                ),
                "error rate by model, 30 days": (
                    lambda: server.error_rate_by_model(since=today - dt.timedelta(days=29), until=tomorrow),
                    lambda: _fetch(
                        conn,
                        ORIGINAL["error_rate_by_model"],
                        {"since": midnight(today - dt.timedelta(days=29)), "until": midnight(tomorrow)},
                    ),
                ),
            }
            for name, (new, original) in dashboard.items():
                t, got, expected, cand = alternate(
                    cfg,
                    new,
                    original,
                    candidate=candidate_dashboard[name],
                    calls_per_round=cfg.dashboard_calls_per_round,
                )
                if not _same_answer(name, got, expected):
                    mismatches.append(name)
                if not _same_rows(CANDIDATE_KEYS[name], cand, expected):
                    mismatches.append(f"{name} (previous query)")
                results[name] = _summary(t)
                rows.append(_row(name, t))
    finally:
        db.close()
    report.table(
        [
            "question",
            "p50 ms",
            "p95 ms",
            "p95 as user (RLS)",
            "original p50 ms",
            "speed-up (p50)",
            "previous query p95 ms",
        ],
        rows,
    )
    report.line(
        "answers agree with the original queries"
        if not mismatches
        else f"ANSWERS DIFFER from the original queries: {', '.join(mismatches)}"
    )
    if mismatches:
        report.failed_checks.append("analytics answers")
    return results


# user_monthly before this change: through the monthly_token_usage view (see queries.sql).
MONTHLY_THROUGH_VIEW = """
select user_id, month, requests, successes, failures, cancelled, prompt_tokens, completion_tokens,
       total_tokens, total_cost, model_breakdown, provider_breakdown
  from public.monthly_token_usage
 where user_id = %(user_id)s
   and month >= %(first_month)s::date
 order by month desc
"""


def measure_monthly_before(url: str, cfg: AnalyticsConfig, facts: dict[str, Any], report: Report) -> dict[str, Any]:
    """``user_monthly_usage`` as it is against the query it replaced, alternating."""
    today = dt.datetime.now(dt.UTC).date()
    index = today.year * 12 + today.month - 1 - 11
    first_month = dt.date(index // 12, index % 12 + 1, 1)
    out: dict[str, Any] = {}
    rows = []
    with Database(url, max_size=1) as db, psycopg.connect(url, autocommit=True) as conn:
        server = Analytics(db)
        for who, user in {"heaviest": facts["heaviest"], "median": facts["median"], "new": NEW_USER}.items():
            t, got, expected, _ = alternate(
                cfg,
                lambda u=user: server.user_monthly_usage(u, months=12),  # type: ignore[misc]
                lambda u=user: _fetch(conn, MONTHLY_THROUGH_VIEW, {"user_id": u, "first_month": first_month}),
                calls_per_round=cfg.dashboard_calls_per_round,
            )
            same = [(m.month, m.requests, m.total_cost, sorted(m.model_breakdown)) for m in got] == [
                (r["month"], r["requests"], r["total_cost"], sorted(r["model_breakdown"])) for r in expected
            ]
            if not same:
                report.failed_checks.append(f"user_monthly_usage({who}) differs from the view")
            out[who] = {"now_p95_ms": percentile(t.new, 95) * 1000, "view_p95_ms": percentile(t.original, 95) * 1000}
            rows.append(
                [
                    who,
                    fmt_ms(percentile(t.new, 95)),
                    fmt_ms(percentile(t.original, 95)),
                    fmt_ratio(median(t.original) / median(t.new)),
                ]
            )
    report.table(["user_monthly_usage for", "p95 ms now", "p95 ms through the view (before)", "speed-up (p50)"], rows)
    return out


def _summary(t: Timings) -> dict[str, float | None]:
    out: dict[str, float | None] = {
        "p50_ms": median(t.new) * 1000,
        "p95_ms": percentile(t.new, 95) * 1000,
        "calls": len(t.new),
    }
    if t.rls:
        out["rls_p95_ms"] = percentile(t.rls, 95) * 1000
    if t.candidate:
        out["previous_p50_ms"] = median(t.candidate) * 1000
        out["previous_p95_ms"] = percentile(t.candidate, 95) * 1000
    if t.original:
        out["original_p50_ms"] = median(t.original) * 1000
        out["original_p95_ms"] = percentile(t.original, 95) * 1000
        out["speedup_p50"] = median(t.original) / median(t.new)
    return out


def _row(label: str, t: Timings) -> list[str]:
    return [
        label,
        fmt_ms(median(t.new)),
        fmt_ms(percentile(t.new, 95)),
        fmt_ms(percentile(t.rls, 95)) if t.rls else "",
        fmt_ms(median(t.original)) if t.original else "(same query)",
        fmt_ratio(median(t.original) / median(t.new)) if t.original else "",
        fmt_ms(percentile(t.candidate, 95)) if t.candidate else "",
    ]


def _same_rows(keys: tuple[str, ...], got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> bool:
    return [tuple(r[k] for k in keys) for r in got] == [tuple(r[k] for k in keys) for r in expected]


def _same_answer(name: str, got: Any, expected: list[dict[str, Any]]) -> bool:
    """The key figures of llmtally's answer equal those aggregated from request_logs."""
    if name == "user_analytics":
        e = expected[0]
        return bool(
            (got.requests.total, got.tokens.total, got.cost, got.requests.failure)
            == (e["total_requests"], e["total_tokens"], e["total_cost"], e["failed_requests"])
            and sorted(got.models_used) == sorted(e["models_used"])
        )
    if name == "user_token_breakdown":
        return [(m.model, m.provider, m.requests, m.cost) for m in got.by_model] == [
            (r["model"], r["provider"], r["requests"], r["cost"]) for r in expected
        ]
    if name == "user_monthly_usage":
        return [(m.month, m.requests, m.total_tokens, m.total_cost) for m in got] == [
            (r["month"], r["requests"], r["total_tokens"], r["total_cost"]) for r in expected
        ]
    if name.startswith("top users"):
        return [(u.user_id, u.requests, u.cost) for u in got] == [
            (r["user_id"], r["requests"], r["cost"]) for r in expected
        ]
    if name.startswith("cost by model"):
        return [(r.day, r.model, r.requests, r.cost) for r in got] == [
            (r["day"], r["model"], r["requests"], r["cost"]) for r in expected
        ]
    if name.startswith("error rate"):
        return [(m.model, m.requests, m.failures) for m in got] == [
            (r["model"], r["requests"], r["failures"]) for r in expected
        ]
    return True


# -- the benchmark -------------------------------------------------------------------------------------
def run(srv: Server, report: Report, cfg: AnalyticsConfig) -> dict[str, Any]:
    report.section("3. Analytics at scale")
    report.line(
        f"sizes {', '.join(f'{s:,}' for s in cfg.sizes)} rows; {cfg.users:,} users (Zipf s={cfg.zipf_s}),"
        f" 50 models over 6 providers, {MONTHS} months; per question {cfg.rounds} rounds of"
        f" {cfg.calls_per_round} llmtally calls (dashboards {cfg.dashboard_calls_per_round}; as many as the user"
        f" under RLS and of llmtally's previous query: before migration 0008 for top users, 0004 for the others)"
        " + 1 original call"
    )
    url = srv.create_database("analytics")
    setup(url, cfg)
    out: dict[str, Any] = {}
    have = 0
    for size in cfg.sizes:
        report.line(f"\n-- {size:,} rows --")
        grow(url, have, size, cfg, report)
        have = size
        facts = describe(url)
        report.line(
            f"  {facts['rows']:,} request_logs rows ({facts['request_logs_size']}),"
            f" {facts['rollup_rows']:,} daily rollup rows ({facts['rollup_size']}), {facts['monthly_rows']:,} monthly,"
            f" {facts['totals_rows']:,} all-users daily, {facts['users']:,} users,"
            f" {facts['models']} models /"
            f" {facts['providers']} providers, failure rate {facts['failure_rate']}; heaviest user"
            f" {facts['heaviest_rows']:,} rows, median user {facts['median_rows']:,} rows"
        )
        report.check(f"analytics invariants at {size:,} rows", check_invariants(url))
        out[str(size)] = {"facts": {k: str(v) for k, v in facts.items()}, "queries": measure(url, cfg, facts, report)}
        if cfg.monthly_before:
            out[str(size)]["monthly_before"] = measure_monthly_before(url, cfg, facts, report)
    srv.drop_database(url)
    _flatness(out, report)
    return out


def _flatness(out: dict[str, Any], report: Report) -> None:
    sizes = list(out)
    if len(sizes) < 2:
        return
    first, last = sizes[0], sizes[-1]
    report.line(f"\np95 at {int(last):,} rows / p95 at {int(first):,} rows (flat ≈ 1):")
    rows = []
    for name, q in out[last]["queries"].items():
        base = out[first]["queries"][name]
        rows.append(
            [
                name,
                fmt_ms(base["p95_ms"] / 1000),
                fmt_ms(q["p95_ms"] / 1000),
                f"{q['p95_ms'] / base['p95_ms']:.2f}",
            ]
        )
    report.table(["question", f"p95 ms @ {int(first):,}", f"p95 ms @ {int(last):,}", "ratio"], rows)
