"""The public API surface and settings."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

import llmtally
from llmtally.db.database import check_url, redact, translate
from llmtally.errors import ConfigurationError, DatabaseError, DatabaseUnreachable


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name in dir(llmtally)
        if not name.startswith("_")
        and name
        not in {
            "analytics",
            "app",
            "budgets",
            "cli",
            "db",
            "demo",
            "errors",
            "export",
            "extras",
            "ledger",
            "metrics",
            "prices",
            "privacy",
            "proxy",
            "settings",
            "tokens",
        }
    }
    assert llmtally.__all__ == sorted(llmtally.__all__)
    assert public | {"__version__"} == set(llmtally.__all__)


def test_errors_share_one_base() -> None:
    for name in llmtally.__all__:
        obj = getattr(llmtally, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, llmtally.LlmtallyError)


def test_settings_read_database_url_and_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/db")
    monkeypatch.setenv("LLMTALLY_BATCH_SIZE", "42")
    monkeypatch.setenv("LLMTALLY_HOME", str(tmp_path))
    settings = llmtally.Settings()
    assert (settings.database_url, settings.batch_size, settings.home, settings.embedded) == (
        "postgresql://a@h/db",
        42,
        tmp_path,
        False,
    )
    monkeypatch.setenv("LLMTALLY_DATABASE_URL", "postgresql://b@h/db")
    assert llmtally.Settings().database_url == "postgresql://b@h/db"


def test_no_url_means_embedded() -> None:
    assert llmtally.Settings().embedded


def test_redact_hides_the_password() -> None:
    assert (
        redact("postgresql://app:s3cret@db.example.com:6543/postgres")
        == "postgresql://app:***@db.example.com:6543/postgres"
    )
    assert "s3cret" not in str(translate(OSError("x"), "postgresql://app:s3cret@db:5432/x"))
    assert "s3cret" not in redact("host=db user=app password=s3cret dbname=x")
    assert "dbname=x" in redact("host=db user=app password=s3cret dbname=x")


def test_check_url_rejects_other_schemes() -> None:
    with pytest.raises(ConfigurationError, match="postgresql://"):
        check_url("mysql://root@localhost/db")
    check_url("postgresql://u@h/db")
    check_url("host=/tmp dbname=x")


def test_ledger_refuses_use_before_start() -> None:
    ledger = llmtally.Ledger("postgresql://u@127.0.0.1:1/x")
    with pytest.raises(llmtally.UserInputError, match="start"):
        ledger.record(llmtally.UsageEvent(litellm_call_id="x", model="m", status="success"))


def test_ledger_start_against_nothing_is_a_clear_error() -> None:
    with pytest.raises(DatabaseUnreachable, match=r"cannot reach PostgreSQL at 127\.0\.0\.1:1"):
        llmtally.Ledger("postgresql://u:pw@127.0.0.1:1/x").start_sync()


def test_an_error_the_server_answered_is_not_called_unreachable() -> None:
    in_use = translate(psycopg.errors.ObjectInUse("cannot ALTER TABLE t because it has pending trigger events"), "x")
    assert type(in_use) is DatabaseError and "cannot reach" not in str(in_use)
    gone = translate(psycopg.errors.AdminShutdown("terminating connection"), "postgresql://a@db:5432/x")
    assert isinstance(gone, DatabaseUnreachable) and str(gone).startswith("cannot reach PostgreSQL at db:5432")
    refused = translate(psycopg.OperationalError("connection failed: refused"), "postgresql://a@db:5432/x")
    assert isinstance(refused, DatabaseUnreachable)
