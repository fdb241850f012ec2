"""What the CLI prints: ids whole at 80 columns, sentences for nothing, counts in the right number,
unknown users refused before anything is written or asked."""

from __future__ import annotations

import re
from pathlib import Path

from llmtally.db import Database
from tests.support.cli import assert_one_line_error, llmtally

DEMO_IDS = (
    "azure-ad_5f0c2a1e-33b8-4d7e-9b4c-8e2d6a7f1c90",
    "google_117195204714065447709",
    "github_583231",
    "okta_00u1abcd2EFGH3ijk4l5",
)


def whole_on_a_line(text: str, word: str) -> bool:
    return any(re.search(rf"(^|\s){re.escape(word)}(\s|$)", line) for line in text.splitlines())


def test_at_80_columns_every_id_can_be_copied(db_url: str) -> None:
    demo = llmtally("demo", database_url=db_url, columns=80)
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.index("loading LiteLLM") < demo.stdout.index("recording to")
    too_wide = [line for line in demo.stdout.splitlines() if len(line) > 80]
    assert not too_wide, too_wide
    for user_id in DEMO_IDS:
        assert whole_on_a_line(demo.stdout, user_id), (user_id, demo.stdout)
    assert "…" not in demo.stdout

    users = llmtally("users", database_url=db_url, columns=80)
    assert re.search(r"^\s*4 users\s*$", users.stdout, re.M), users.stdout
    for user_id in DEMO_IDS:
        assert whole_on_a_line(users.stdout, user_id), (user_id, users.stdout)
    assert "not shown at 80 columns:" in users.stdout and "…" not in users.stdout

    created = llmtally("tokens", "create", "google_117195204714065447709", "--name", "laptop", database_url=db_url)
    assert created.returncode == 0, created.stderr
    prefix = created.stdout.strip()[:10]
    listed = llmtally("tokens", "list", database_url=db_url, columns=80)
    assert whole_on_a_line(listed.stdout, "google_117195204714065447709"), listed.stdout
    assert whole_on_a_line(listed.stdout, prefix), listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80

    report = llmtally("report", database_url=db_url, columns=80)
    assert whole_on_a_line(report.stdout, "acme-internal-llm") and "…" not in report.stdout, report.stdout


def test_numbers_are_right_aligned(db_url: str) -> None:
    assert llmtally("demo", "--users", "1", database_url=db_url).returncode == 0
    users = llmtally("users", database_url=db_url)
    assert re.search(r"^\s*1 user\s*$", users.stdout, re.M), users.stdout
    header = next(line for line in users.stdout.splitlines() if "requests" in line)
    row = next(line for line in users.stdout.splitlines() if "google_117195204714065447709" in line)
    # the count ends where its header ends: right-aligned under it
    count = re.search(r"(\d+) │", row[header.index("┃ requests") :])
    assert count is not None and row.index(count.group(0)) + len(count.group(1)) == header.index("requests ┃") + 8


def test_empty_results_are_a_sentence(db_url: str) -> None:
    users = llmtally("users", database_url=db_url)
    assert users.returncode == 0 and users.stdout.startswith("no users yet"), users.stdout
    report = llmtally("report", "--month", "2026-01", database_url=db_url)
    assert report.returncode == 0 and report.stdout.strip() == "no requests in January 2026", report.stdout
    for out in (users.stdout, report.stdout):
        assert "┏" not in out and "━" not in out


def test_export_of_an_unknown_user_is_one_line_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "nobody.csv"
    assert_one_line_error(llmtally("export", "--user", "nobody", "-o", str(out), database_url=db_url), "nobody")
    assert not out.exists()
    result = llmtally("export", "--user", "nobody", database_url=db_url)
    assert_one_line_error(result, "unknown user: 'nobody'")
    assert result.stdout == ""


def test_deleting_an_unknown_user_asks_nothing(db_url: str, db: Database) -> None:
    result = llmtally("users", "delete", "nobody", database_url=db_url, input="y\n")
    assert_one_line_error(result, "unknown user: 'nobody'")
    assert "delete every personal record" not in result.stdout + result.stderr


def test_deleting_a_known_user_still_asks(db_url: str, db: Database) -> None:
    assert llmtally("demo", "--users", "1", database_url=db_url).returncode == 0
    refused = llmtally("users", "delete", "google_117195204714065447709", database_url=db_url, input="n\n")
    assert refused.returncode == 1 and "delete every personal record" in refused.stdout
    assert db.fetch_one("select count(*) as n from user_profiles")["n"] == 1
    done = llmtally("users", "delete", "google_117195204714065447709", database_url=db_url, input="y\n")
    assert done.returncode == 0 and "removed" in done.stdout, done.stdout + done.stderr
    assert db.fetch_one("select count(*) as n from user_profiles")["n"] == 0
