"""The CLI, run for real: commands work, and user mistakes print one line with no traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmtally.db import Database
from tests.support.cli import assert_one_line_error, llmtally, llmtally_process
from tests.support.cluster import Cluster
from tests.support.invariants import assert_counters_match_ledger


def test_migrate_then_check(empty_db_url: str) -> None:
    check = llmtally("migrate", "--check", database_url=empty_db_url)
    assert_one_line_error(check, "pending", "0001_ledger.sql")
    first = llmtally("migrate", database_url=empty_db_url)
    assert first.returncode == 0 and "applied 0001_ledger.sql" in first.stdout
    second = llmtally("migrate", database_url=empty_db_url)
    assert second.returncode == 0 and "applied" not in second.stdout and "current" in second.stdout
    assert llmtally("migrate", "--check", database_url=empty_db_url).returncode == 0


def test_demo_records_every_kind_of_call(db_url: str, db: Database) -> None:
    result = llmtally("demo", database_url=db_url)
    assert result.returncode == 0, result.stderr
    assert "Grace Hopper" in result.stdout and "unpriced" in result.stdout and "Traceback" not in result.stderr
    stats = db.fetch_one(
        "select count(distinct user_profile_id) as users, count(*) filter (where status = 'failure') as failures,"
        " count(*) filter (where status = 'cancelled') as cancelled,"
        " count(*) filter (where cost_status = 'unpriced') as unpriced, count(*) filter (where stream) as streams,"
        " count(*) filter (where user_profile_id is null) as unlinked from request_logs"
    )
    assert stats == {"users": 4, "failures": 2, "cancelled": 2, "unpriced": 4, "streams": 11 + 2, "unlinked": 0}
    assert_counters_match_ledger(db)
    report = llmtally("report", "--user", "github_583231", database_url=db_url)
    assert report.returncode == 0 and "Grace Hopper" in report.stdout and "claude-haiku-4-5" in report.stdout
    overall = llmtally("report", database_url=db_url)
    assert overall.returncode == 0 and "acme-internal-llm" in overall.stdout
    assert "google_117195204714065447709" in overall.stdout
    users = llmtally("users", database_url=db_url)
    assert users.returncode == 0 and "katherine@example.com" in users.stdout


def test_prices_set_reprices_stored_rows(db_url: str, db: Database) -> None:
    assert llmtally("demo", "--users", "1", database_url=db_url).returncode == 0
    before = db.fetch_one("select total_cost, unpriced_count from user_profiles")
    result = llmtally("prices", "set", "openai/acme-internal-llm", "--input", "1", "--output", "2", database_url=db_url)
    assert result.returncode == 0, result.stderr
    assert "repriced 1 stored row\n" in result.stdout
    after = db.fetch_one("select total_cost, unpriced_count from user_profiles")
    assert after["unpriced_count"] == before["unpriced_count"] - 1 == 0
    assert after["total_cost"] > before["total_cost"]
    listed = llmtally("prices", "list", database_url=db_url)
    assert "openai/acme-internal-llm" in listed.stdout
    assert llmtally("prices", "delete", "openai/acme-internal-llm", database_url=db_url).returncode == 0
    assert "repriced 1" in llmtally("prices", "reprice", database_url=db_url).stdout
    assert db.fetch_one("select unpriced_count from user_profiles")["unpriced_count"] == 1
    assert_counters_match_ledger(db)
    assert_one_line_error(
        llmtally("prices", "set", "m", "--input", "-1", "--output", "1", database_url=db_url),
        "--input must be zero or more",
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("report", "--month", "2026-13"), ("no month 13",)),
        (("report", "--month", "last"), ("--month must look like 2026-01",)),
        (("report", "--user", "nobody_1"), ("unknown user", "nobody_1")),
    ],
)
def test_user_mistakes_are_one_line(db_url: str, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    assert_one_line_error(llmtally(*args, database_url=db_url), *fragments)


def test_unreachable_database_is_one_line_without_the_password() -> None:
    result = llmtally_process("users", database_url="postgresql://app:hunter2@127.0.0.1:1/ledger")
    assert_one_line_error(result, "cannot reach PostgreSQL at 127.0.0.1:1")
    assert "hunter2" not in result.stderr + result.stdout


def test_malformed_url_is_one_line() -> None:
    result = llmtally_process("users", database_url="mysql://root@localhost/db")
    assert_one_line_error(result, "llmtally needs a PostgreSQL URL (postgresql://...), got mysql://root@localhost/db")


def test_missing_database_is_one_line(cluster_admin_url: str) -> None:
    url = cluster_admin_url.replace("dbname=postgres", "dbname=llmtally_no_such_db")
    assert_one_line_error(llmtally("users", database_url=url), "llmtally_no_such_db", "does not exist")


def test_shared_database_without_schema_asks_for_migrate(empty_db_url: str) -> None:
    assert_one_line_error(llmtally("users", database_url=empty_db_url), "run `llmtally migrate`")


@pytest.mark.slow
def test_embedded_database_is_created_and_migrated_on_demand(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = llmtally("demo", "--users", "1", home=home)
    assert first.returncode == 0, first.stderr
    assert (home / "pgdata" / "PG_VERSION").exists()
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the server is stopped when the command ends"
    again = llmtally_process("users", home=home)  # a real process: the server stops when it exits
    assert again.returncode == 0 and "Ada Lovelace" in again.stdout
    assert not (home / "pgdata" / "postmaster.pid").exists()


def test_missing_privileges_is_one_line(db_url: str, cluster_admin_url: str) -> None:
    import psycopg

    with psycopg.connect(cluster_admin_url, autocommit=True) as admin:
        admin.execute(
            "do $$ begin create role llmtally_nobody login; exception when duplicate_object then null; end $$"
        )
    url = psycopg.conninfo.make_conninfo(db_url, user="llmtally_nobody")
    assert_one_line_error(llmtally("users", database_url=url), "permission denied")
    assert_one_line_error(llmtally("migrate", database_url=url), "permission denied")


def test_wrong_password_is_one_line(embedded_cluster: Cluster) -> None:
    """The embedded server trusts its socket; this test asks it to check one role's password."""
    import psycopg

    with psycopg.connect(embedded_cluster.admin_url, autocommit=True) as admin:
        hba = Path(admin.execute("show hba_file").fetchone()[0])
        original = hba.read_text()
        admin.execute(
            "do $$ begin create role llmtally_pw login password 'right-one';"
            " exception when duplicate_object then null; end $$"
        )
        try:
            hba.write_text("local all llmtally_pw scram-sha-256\n" + original)
            admin.execute("select pg_reload_conf()")
            url = psycopg.conninfo.make_conninfo(embedded_cluster.admin_url, user="llmtally_pw", password="wrong-one")
            result = llmtally("users", database_url=url)
            # As with localhost (::1, then 127.0.0.1): the refusal at one address, then another that does not answer.
            socket_dir = psycopg.conninfo.conninfo_to_dict(url)["host"]
            two_hosts = psycopg.conninfo.make_conninfo(url, host=f"{socket_dir},{socket_dir}/no-such-dir")
            second = llmtally("users", database_url=two_hosts)
        finally:
            hba.write_text(original)
            admin.execute("select pg_reload_conf()")
    assert_one_line_error(result, "rejected the login", "user and password")
    assert "wrong-one" not in result.stderr
    assert_one_line_error(second, "rejected the login", "user and password")
    assert "cannot reach" not in second.stderr and "wrong-one" not in second.stderr


def test_reprice_accepts_the_model_with_its_provider(db_url: str, db: Database) -> None:
    assert llmtally("demo", "--users", "1", database_url=db_url).returncode == 0
    set_price = llmtally(
        "prices",
        "set",
        "openai/acme-internal-llm",
        "--input",
        "1",
        "--output",
        "2",
        "--no-reprice",
        database_url=db_url,
    )
    assert set_price.returncode == 0 and "repriced" not in set_price.stdout
    result = llmtally("prices", "reprice", "--model", "openai/acme-internal-llm", database_url=db_url)
    assert "repriced 1 stored row\n" in result.stdout, result.stdout + result.stderr


def test_up_reports_a_taken_port_before_loading_the_app() -> None:
    """`llmtally up` on a taken port stops before LiteLLM, Chainlit or FastAPI are imported."""
    import socket
    import subprocess
    import sys

    program = (
        "import sys\n"
        "from llmtally.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    print(exit.code, sorted(m for m in ('litellm', 'chainlit', 'fastapi') if m in sys.modules))\n"
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-c", program, "up", "--port", str(port)],
            env={**os.environ, "DATABASE_URL": "postgresql://u@127.0.0.1:1/x", "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr
    assert done.stdout.strip() == "1 []", done.stdout + done.stderr
