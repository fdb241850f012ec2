"""`llmtally export` equals the rows in the database (CSV and JSON Lines); `llmtally tokens` end to end."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from llmtally import Ledger, Settings
from llmtally.db import Database
from llmtally.export import COLUMNS, JSON_COLUMNS
from tests.support.cli import assert_one_line_error, llmtally
from tests.support.web_seed import ADA, NOW, ROOT, Api, event, seed


@pytest.fixture
def seeded_url(db_url: str) -> str:
    """The web fixtures' rows plus awkward content: quotes, commas, newlines, unicode, exact decimals."""
    seed(db_url)
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(
            event(
                "odd-1",
                ADA,
                messages=[{"role": "user", "content": 'a "quoted", comma\nnew line — ünïcode 🎉', "n": 0.1}],
                reported_cost=0.000123456789,
                metadata={"tags": ["x", "y"], "ratio": 1.25},
                created_at=NOW - dt.timedelta(days=3),
            )
        )
        assert ledger.flush_sync()
    return db_url


def db_rows(db_url: str, where: str = "true") -> list[dict[str, Any]]:
    with Database(db_url) as db:
        return db.fetch_all(f"select * from request_logs where {where} order by created_at, id")


def as_csv_text(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)


def check_csv(text: str, rows: list[dict[str, Any]]) -> None:
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(rows) > 0
    for got, want in zip(parsed, rows, strict=True):
        assert list(got) == list(COLUMNS)
        for column in COLUMNS:
            if column in JSON_COLUMNS:
                assert (json.loads(got[column], parse_float=Decimal) if got[column] else None) == want[column]
            else:
                assert got[column] == as_csv_text(column, want[column]), column


def check_jsonl(text: str, rows: list[dict[str, Any]]) -> None:
    parsed = [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    assert len(parsed) == len(rows) > 0
    for got, want in zip(parsed, rows, strict=True):
        assert list(got) == list(COLUMNS)
        for column in COLUMNS:
            value = want[column]
            if isinstance(value, dt.datetime):
                assert dt.datetime.fromisoformat(got[column]) == value
            else:
                assert got[column] == value, column


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_equals_the_rows_in_the_database(seeded_url: str, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"all.{fmt}"
    result = llmtally("export", "--format", fmt, "--output", str(out), "--progress", database_url=seeded_url)
    assert result.returncode == 0, result.stderr
    rows = db_rows(seeded_url)
    assert f"exported {len(rows)} rows" in result.stderr
    assert "exporting" in result.stderr and f"{len(rows)}/{len(rows)}" in result.stderr  # the progress bar
    (check_csv if fmt == "csv" else check_jsonl)(out.read_text(encoding="utf-8"), rows)
    assert any(r["total_cost"] == Decimal("0.000123456789") for r in rows)  # the exact digits made the trip


def test_export_filters_by_user_and_period_to_stdout(seeded_url: str) -> None:
    since, until = (NOW - dt.timedelta(days=5)).date(), (NOW - dt.timedelta(days=1)).date()
    result = llmtally(
        "export", "--format", "jsonl", "--user", ADA, "--since", str(since), "--until", str(until),
        database_url=seeded_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = db_rows(seeded_url, f"user_profile_id = '{ADA}' and created_at >= '{since}' and created_at < '{until}'")
    assert [r["litellm_call_id"] for r in rows] == ["odd-1"]
    check_jsonl(result.stdout, rows)


def team_calls(db_url: str) -> None:
    """Three calls through a team key: two name the member Ann as their end user, one names Cy."""
    with Ledger(db_url, settings=Settings(flush_interval_ms=20)) as ledger:
        for call, end_user in (("team-ann-1", "member-ann"), ("team-ann-2", "member-ann"), ("team-cy", "member-cy")):
            ledger.record(event(call, "team:research", end_user=end_user, created_at=NOW - dt.timedelta(hours=1)))
        assert ledger.flush_sync()


@pytest.mark.sql  # the export's SQL filter: on every server
def test_export_filters_by_end_user(seeded_url: str) -> None:
    team_calls(seeded_url)
    result = llmtally("export", "--format", "jsonl", "--end-user", "member-ann", "--progress", database_url=seeded_url)
    assert result.returncode == 0, result.stderr
    rows = db_rows(seeded_url, "end_user = 'member-ann'")
    assert [r["litellm_call_id"] for r in rows] == ["team-ann-1", "team-ann-2"]
    assert "exported 2 rows" in result.stderr and "2/2" in result.stderr  # the count takes the filter too
    check_jsonl(result.stdout, rows)
    both = llmtally("export", "--end-user", "member-ann", "--user", ADA, database_url=seeded_url)
    assert both.returncode == 0 and both.stdout.count("\n") == 1  # Ada's own calls name no Ann: the header only


@pytest.mark.sql
def test_the_dashboard_download_filters_by_end_user(api: Api) -> None:
    team_calls(api.db.url)
    for fmt, check in (("csv", check_csv), ("jsonl", check_jsonl)):
        response = api.get("/admin/export", ROOT, format=fmt, end_user="member-ann")
        assert response.status_code == 200  # type: ignore[attr-defined]
        check(response.text, db_rows(api.db.url, "end_user = 'member-ann'"))  # type: ignore[attr-defined]
    refused = api.get("/admin/export", ROOT, end_user="x" * 501)
    assert refused.status_code == 400  # type: ignore[attr-defined]
    assert refused.json()["error"].startswith("invalid end_user")  # type: ignore[attr-defined]
    assert api.get("/admin/export", ADA, end_user="member-ann").status_code == 403  # type: ignore[attr-defined]


def test_export_mistakes_are_one_line_errors(seeded_url: str) -> None:
    assert_one_line_error(llmtally("export", "--since", "yesterday", database_url=seeded_url), "--since")
    assert_one_line_error(
        llmtally("export", "--since", "2026-02-01", "--until", "2026-01-01", database_url=seeded_url), "after"
    )


def test_dashboard_download_is_the_same_export(api: Api) -> None:
    for fmt, check in (("csv", check_csv), ("jsonl", check_jsonl)):
        response = api.get("/admin/export", ROOT, format=fmt)
        assert response.status_code == 200  # type: ignore[attr-defined]
        assert "attachment" in response.headers["content-disposition"]  # type: ignore[attr-defined]
        with Database(api.db.url) as db:
            rows = db.fetch_all("select * from request_logs order by created_at, id")
        check(response.text, rows)  # type: ignore[attr-defined]


def test_the_download_is_named_by_its_days_the_last_one_inclusive(api: Api) -> None:
    # The dashboard asks for until = the day after the last one shown; the file names the last one.
    response = api.get("/admin/export", ROOT, format="csv", since="2026-11-01", until="2026-12-01")
    assert response.status_code == 200  # type: ignore[attr-defined]
    disposition = response.headers["content-disposition"]  # type: ignore[attr-defined]
    assert disposition == 'attachment; filename="llmtally-requests-2026-11-01-to-2026-11-30.csv"'


def test_tokens_create_list_revoke(seeded_url: str) -> None:
    created = llmtally("tokens", "create", ADA, "--name", "laptop", "--expires", "30d", database_url=seeded_url)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("lt_") and len(token) > 40 and "not shown again" in created.stderr
    listed = llmtally("tokens", "list", "--user", ADA, database_url=seeded_url)
    assert "laptop" in listed.stdout and token[:10] in listed.stdout and token not in listed.stdout
    assert "active" in listed.stdout and "every model" in listed.stdout
    limited = llmtally("tokens", "create", ADA, "--models", "gpt-4o-mini, llmtally/demo,", database_url=seeded_url)
    assert limited.returncode == 0, limited.stderr
    assert "gpt-4o-mini, llmtally/demo" in llmtally("tokens", "list", "--user", ADA, database_url=seeded_url).stdout
    revoked = llmtally("tokens", "revoke", token[:10], database_url=seeded_url)
    assert revoked.returncode == 0 and "revoked token" in revoked.stdout
    assert "revoked" in llmtally("tokens", "list", database_url=seeded_url).stdout
    assert_one_line_error(llmtally("tokens", "revoke", token[:10], database_url=seeded_url), "no active token")
    assert_one_line_error(llmtally("tokens", "create", "nobody", database_url=seeded_url), "unknown user")
    assert_one_line_error(llmtally("tokens", "create", ADA, "--expires", "soon", database_url=seeded_url), "--expires")


def test_tokens_create_new_user_makes_the_profile_of_a_service(seeded_url: str) -> None:
    created = llmtally("tokens", "create", "svc_nightly", "--new-user", "--name", "job", database_url=seeded_url)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip().startswith("lt_")
    listed = llmtally("users", database_url=seeded_url)
    assert "svc_nightly" in listed.stdout
    again = llmtally("tokens", "create", ADA, "--new-user", database_url=seeded_url)  # an existing user: kept
    assert again.returncode == 0, again.stderr
