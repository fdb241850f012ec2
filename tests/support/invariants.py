"""The ledger's invariants, checked after every test that writes through it."""

from __future__ import annotations

from llmtally.db import Database


def assert_counters_match_ledger(db: Database) -> None:
    """user_profiles counters = sum over the user's rollup = sum over the user's request_logs rows, and the
    monthly and all-users rollups = sums of the daily one."""
    rows = db.fetch_all(
        """
        with logs as (
            select coalesce(user_profile_id, '') as user_id, count(*) as requests, sum(tokens_used) as tokens,
                   sum(prompt_tokens) as prompt, sum(completion_tokens) as completion,
                   coalesce(sum(total_cost), 0) as cost,
                   count(*) filter (where status = 'failure') as failures,
                   count(*) filter (where status = 'cancelled') as cancelled,
                   count(*) filter (where cost_status = 'unpriced') as unpriced
              from request_logs group by 1
        ), rollup as (
            select coalesce(user_id, '') as user_id, sum(requests) as requests, sum(tokens) as tokens,
                   sum(prompt_tokens) as prompt,
                   sum(completion_tokens) as completion, sum(cost) as cost, sum(failures) as failures,
                   sum(cancelled) as cancelled, sum(unpriced_requests) as unpriced
              from usage_daily group by 1
        )
        select nullif(coalesce(l.user_id, r.user_id, p.user_id), '') as user_id,
               l.requests as l_requests, r.requests as r_requests, p.request_count as p_requests,
               l.tokens as l_tokens, r.tokens as r_tokens, p.tokens_used as p_tokens,
               l.prompt as l_prompt, r.prompt as r_prompt, p.prompt_tokens as p_prompt,
               l.completion as l_completion, r.completion as r_completion, p.completion_tokens as p_completion,
               l.cost as l_cost, r.cost as r_cost, p.total_cost as p_cost,
               l.failures as l_failures, r.failures as r_failures, p.failure_count as p_failures,
               l.cancelled as l_cancelled, r.cancelled as r_cancelled, p.cancelled_count as p_cancelled,
               l.unpriced as l_unpriced, r.unpriced as r_unpriced, p.unpriced_count as p_unpriced
          from logs l
          full join rollup r on r.user_id = l.user_id
          full join user_profiles p on p.user_id = coalesce(l.user_id, r.user_id)
        """
    )
    for row in rows:
        anonymous = row["user_id"] is None
        for what in ("requests", "tokens", "prompt", "completion", "cost", "failures", "cancelled", "unpriced"):
            logged, rolled = row[f"l_{what}"] or 0, row[f"r_{what}"] or 0
            assert logged == rolled, f"{row['user_id']}: {what} ledger {logged} != rollup {rolled}"
            if not anonymous:
                counter = row[f"p_{what}"] or 0
                assert counter == logged, f"{row['user_id']}: {what} counter {counter} != ledger {logged}"
    assert_rollups_agree(db)


ROLLUP_MEASURES = (
    "requests",
    "successes",
    "failures",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "cost",
    "unpriced_requests",
    "latency_ms_sum",
)


def assert_rollups_agree(db: Database) -> None:
    """usage_monthly, usage_monthly_users and usage_daily_totals are exactly the sums of usage_daily (no row
    missing or extra)."""
    sums = ", ".join(f"sum({m}) as {m}" for m in ROLLUP_MEASURES)
    cols = ", ".join(ROLLUP_MEASURES)
    for name, from_daily, rollup in (
        (
            "usage_monthly",
            f"select user_id, date_trunc('month', day)::date as month, model, provider, {sums}"
            " from usage_daily group by 1, 2, 3, 4",
            f"select user_id, month, model, provider, {cols} from usage_monthly",
        ),
        (
            "usage_monthly_users",
            f"select user_id, date_trunc('month', day)::date as month, {sums} from usage_daily group by 1, 2",
            f"select user_id, month, {cols} from usage_monthly_users",
        ),
        (
            "usage_daily_totals",
            f"select day, model, provider, {sums} from usage_daily group by 1, 2, 3",
            f"select day, model, provider, {cols} from usage_daily_totals",
        ),
    ):
        missing = db.fetch_all(f"({from_daily}) except all ({rollup})")
        extra = db.fetch_all(f"({rollup}) except all ({from_daily})")
        assert not missing and not extra, f"{name} differs from usage_daily: missing {missing[:3]}, extra {extra[:3]}"


def assert_counters_match_rollup(db: Database) -> None:
    """user_profiles counters = sum over the user's usage_daily rows.

    This one holds after retention deleted old request_logs rows (deletes change no counter and no
    rollup row), when assert_counters_match_ledger no longer can.
    """
    rows = db.fetch_all(
        """
        select p.user_id, p.request_count, p.tokens_used, p.prompt_tokens, p.completion_tokens, p.total_cost,
               p.failure_count, p.cancelled_count, p.unpriced_count,
               coalesce(sum(d.requests), 0) as r_requests, coalesce(sum(d.tokens), 0) as r_tokens,
               coalesce(sum(d.prompt_tokens), 0) as r_prompt, coalesce(sum(d.completion_tokens), 0) as r_completion,
               coalesce(sum(d.cost), 0) as r_cost, coalesce(sum(d.failures), 0) as r_failures,
               coalesce(sum(d.cancelled), 0) as r_cancelled, coalesce(sum(d.unpriced_requests), 0) as r_unpriced
          from user_profiles p left join usage_daily d on d.user_id = p.user_id
         group by p.user_id
        """
    )
    pairs = {
        "request_count": "r_requests",
        "tokens_used": "r_tokens",
        "prompt_tokens": "r_prompt",
        "completion_tokens": "r_completion",
        "total_cost": "r_cost",
        "failure_count": "r_failures",
        "cancelled_count": "r_cancelled",
        "unpriced_count": "r_unpriced",
    }
    for row in rows:
        for counter, rolled in pairs.items():
            assert row[counter] == row[rolled], f"{row['user_id']}: {counter} {row[counter]} != rollup {row[rolled]}"
    orphans = db.fetch_one(
        "select count(*) as n from usage_daily d where d.user_id is not null"
        " and not exists (select from user_profiles p where p.user_id = d.user_id)"
    )
    assert orphans is not None and orphans["n"] == 0, "usage_daily rows of a user without a profile"
    assert_rollups_agree(db)
