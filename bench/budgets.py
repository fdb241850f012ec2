"""Budgets: what the settlement trigger costs the ledger's ingest, and how long a reservation takes.

- ingest: batches of 500 events written with ``write_events`` (COPY, llmtally_insert_events, every
  trigger), in three states of one schema: no budget at all; a default monthly budget (the trigger
  then checks every user of the batch for alerts); the same with a reservation for every event (the
  trigger deletes them); and, as the baseline, with the settlement trigger disabled (the ledger
  before migration 0004). The states alternate within each repetition; ratios are per repetition,
  then the median.
- reserve: ``llmtally_reserve`` for one user under a monthly budget, with 0, 1,000 and 10,000 of
  their calls already in the month (each reservation released again), p50 and p95.

    .venv/bin/python bench/budgets.py [--database-url URL] [--events N] [--reps N]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import check_invariants, fmt_rate, fmt_ratio, median, percentile, server
from bench.workload import Workload

from llmtally import budgets as api
from llmtally.db import Database
from llmtally.ledger.postgres_sink import write_events

BATCH = 500


def ingest(db: Database, workload: Workload, events: int, *, reserve: bool) -> float:
    batches = []
    for start in range(0, events, BATCH):
        batch = [workload.event(n) for n in range(start, min(events, start + BATCH))]
        batches.append(batch)
        if reserve:
            with db.transaction() as conn:
                conn.cursor().executemany(
                    "insert into budget_reservations (litellm_call_id, user_id, usd, tokens, expires_at)"
                    " values (%s, %s, 0.01, 1000, now() + interval '1 hour')",
                    # A failure keeps its reservation (a retry of the call may follow): none is made for it.
                    [(e.litellm_call_id, e.user_profile_id or "anonymous") for e in batch if e.status != "failure"],
                )
    began = time.perf_counter()
    for batch in batches:
        write_events(db, batch)
    return events / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="a PostgreSQL server to create databases on (default: embedded)")
    parser.add_argument("--events", type=int, default=20_000, help="events per ingest run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each ingest state")
    args = parser.parse_args()
    with server(args.database_url) as srv:
        print(f"# Budgets benchmark\n\n{srv.description}\n")
        states = ("trigger disabled", "no budget", "default budget", "budget + reservations")
        rates: dict[str, list[float]] = {s: [] for s in states}
        for rep in range(args.reps):
            for state in states:
                url = srv.create_database("budgets")
                with Database(url, max_size=2) as db:
                    if state == "trigger disabled":  # the ledger as it was before migration 0004
                        db.execute("alter table request_logs disable trigger request_logs_usage_settle")
                    elif state != "no budget":
                        api.set_budget(db, None, "monthly", limit_usd=Decimal(1000))
                    rates[state].append(ingest(db, Workload(seed=rep + 1), args.events, reserve="reserv" in state))
                    if "reserv" in state:
                        left = db.fetch_one("select count(*) as n from budget_reservations")
                        assert left is not None and left["n"] == 0, "every reservation must be settled"
                report = check_invariants(url)
                assert report.ok, str(report)
                srv.drop_database(url)
        print(f"## Ingest, {args.events:,} events in batches of {BATCH}, {args.reps} repetitions\n")
        print("| state | rows/s (median) | vs trigger disabled |\n|---|---:|---:|")
        for state in states:
            ratio = median([r / base for r, base in zip(rates[state], rates["trigger disabled"], strict=True)])
            print(f"| {state} | {fmt_rate(median(rates[state]))} | {fmt_ratio(ratio)} |")

        print("\n## llmtally_reserve, one user under a monthly budget\n")
        print("| user's calls this month | p50 ms | p95 ms |\n|---:|---:|---:|")
        url = srv.create_database("reserve")
        with Database(url, max_size=2) as db:
            db.execute("select llmtally_upsert_user('google_1')")
            api.set_budget(db, "google_1", "monthly", limit_usd=Decimal(1_000_000))
            est = api.Estimate("gpt-4o-mini", "openai", 100, 500, Decimal("0.0003"), None)
            have = 0
            for calls in (0, 1_000, 10_000, 100_000):
                if calls > have:
                    db.execute(
                        "insert into request_logs (user_profile_id, litellm_call_id, model, cost_status, total_cost,"
                        " status, tokens_used) select 'google_1', 'pre-' || g, 'gpt-4o-mini', 'priced', 0.0003,"
                        " 'success', 600 from generate_series(%s::int, %s::int) g",
                        (have + 1, calls),
                    )
                    db.execute("analyze request_logs")
                    have = calls
                times = []
                for _ in range(300):
                    call_id = str(uuid.uuid4())
                    began = time.perf_counter()
                    api.reserve(db, "google_1", call_id, est)
                    times.append(time.perf_counter() - began)
                    api.release(db, call_id)
                print(f"| {calls:,} | {percentile(times, 50) * 1000:.2f} | {percentile(times, 95) * 1000:.2f} |")


if __name__ == "__main__":
    main()
