"""Several app processes write at once: every call lands once and the counters stay exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmtally.db import Database
from tests.support.forked import run_forked
from tests.support.invariants import assert_counters_match_ledger

pytestmark = [pytest.mark.sql, pytest.mark.slow]  # SQL: runs on every server (tests/conftest.py)

WORKER = Path(__file__).parents[1] / "support" / "concurrent_worker.py"


def test_concurrent_processes_keep_counters_equal_to_the_ledger(db: Database, db_url: str) -> None:
    processes, calls = 4, 200
    for p in run_forked(WORKER, [[db_url, str(w), str(calls)] for w in range(processes)], timeout=300):
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    summary = db.fetch_one(
        "select count(*) as n, count(distinct litellm_call_id) as ids,"
        " count(*) filter (where status = 'failure') as failures, count(*) filter (where stream) as streams"
        " from request_logs"
    )
    assert summary == {
        "n": processes * calls,
        "ids": processes * calls,
        "failures": processes * calls // 10,
        "streams": processes * (calls // 3 - calls // 30),
    }
    assert db.fetch_one("select sum(request_count) as n from user_profiles")["n"] == processes * calls
    assert_counters_match_ledger(db)


def test_concurrent_replays_of_the_same_calls_count_once(db: Database, db_url: str) -> None:
    for p in run_forked(WORKER, [[db_url, "0", "120"]] * 3, timeout=300):  # three processes, the same calls
        assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert db.fetch_one("select count(*) as n from request_logs")["n"] == 120
    assert db.fetch_one("select sum(request_count) as n from user_profiles")["n"] == 120
    assert_counters_match_ledger(db)
