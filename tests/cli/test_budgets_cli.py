"""budgets and limits commands, run for real: they work, and mistakes print one line."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmtally import budgets as api
from llmtally.db import Database
from tests.support.cli import assert_one_line_error, llmtally

USER = "google_31"


def test_budgets_and_limits_round_trip(db_url: str, db: Database) -> None:
    db.execute("select llmtally_upsert_user(%s)", (USER,))
    done = llmtally("budgets", "set", "default", "--period", "monthly", "--usd", "20", database_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "default: hard monthly budget of $20 (UTC)" in done.stdout
    done = llmtally(
        "budgets", "set", USER, "--period", "daily", "--usd", "1.5", "--tokens", "10000", "--soft",
        "--thresholds", "80%,100%", "--timezone", "Asia/Kolkata", database_url=db_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{USER}: soft daily budget of $1.5 and 10,000 tokens (Asia/Kolkata)" in done.stdout
    (own,) = [b for b in api.list_budgets(db) if b.user_profile_id == USER]
    assert (own.limit_usd, own.limit_tokens, own.hard, own.thresholds) == (
        Decimal("1.5"),
        10000,
        False,
        [Decimal("0.8"), Decimal("1")],
    )
    listed = llmtally("budgets", "list", database_url=db_url)
    assert listed.returncode == 0 and "Asia/Kolkata" in listed.stdout and "80%,100%" in listed.stdout
    shown = llmtally("budgets", "show", USER, database_url=db_url)
    assert shown.returncode == 0, shown.stderr
    assert "daily" in shown.stdout and "monthly" in shown.stdout and "$20" in shown.stdout
    assert llmtally("limits", "set", "default", "--rpm", "60", database_url=db_url).returncode == 0
    assert llmtally("limits", "set", USER, "--rpm", "5", "--tpm", "9000", database_url=db_url).returncode == 0
    assert (
        "5 requests and 9,000 tokens per minute (own)" in llmtally("limits", "show", USER, database_url=db_url).stdout
    )
    assert "60 requests and - tokens per minute (default)" in llmtally("limits", "show", database_url=db_url).stdout
    deleted = llmtally("budgets", "delete", USER, "--period", "daily", database_url=db_url)
    assert deleted.returncode == 0 and [b.user_profile_id for b in api.list_budgets(db)] == [None]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("budgets", "set", "nobody_1", "--period", "daily", "--usd", "1"), ("unknown user", "nobody_1")),
        (("budgets", "set", USER, "--period", "hourly", "--usd", "1"), ("period must be one of", "hourly")),
        (("budgets", "set", USER, "--period", "daily", "--usd", "1", "--timezone", "Mars/Base"), ("unknown timezone",)),
        (("budgets", "set", USER, "--period", "daily", "--usd", "-3"), ("--usd must be zero or more",)),
        (("budgets", "set", USER, "--period", "daily", "--usd", "ten"), ("--usd must be a number",)),
        (("budgets", "set", USER, "--period", "daily", "--tokens", "-1"), ("--tokens must be zero or more",)),
        (("budgets", "set", USER, "--period", "daily"), ("give a USD limit, a token limit",)),
        (("budgets", "set", USER, "--period", "daily", "--usd", "1", "--thresholds", "0,x"), ("threshold",)),
        (("budgets", "show", "nobody_1"), ("unknown user",)),
        (("budgets", "delete", USER, "--period", "weekly"), ("no weekly budget for",)),
        (("limits", "set", USER, "--rpm", "-5"), ("--rpm must be zero or more",)),
        (("limits", "set", "nobody_1", "--rpm", "5"), ("unknown user",)),
        (("limits", "show", "nobody_1"), ("unknown user",)),
    ],
)
def test_budget_mistakes_are_one_line(
    db_url: str, db: Database, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    db.execute("select llmtally_upsert_user(%s)", (USER,))
    assert_one_line_error(llmtally(*args, database_url=db_url), *fragments)
