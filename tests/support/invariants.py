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
                   count(*) filter (where cost_status = 'unpriced') as unpriced,
                   sum(attempt_count) as attempts, sum(failed_attempts) as failed_attempts,
                   count(*) filter (where cache_hit) as cache_hits,
                   count(*) filter (where usage_source = 'estimated') as estimated,
                   sum(cached_tokens) as cached, sum(cache_creation_tokens) as cache_creation,
                   sum(reasoning_tokens) as reasoning, sum(audio_tokens) as audio,
                   coalesce(sum(saved_cost), 0) as saved
              from request_logs group by 1
        ), rollup as (
            select coalesce(user_id, '') as user_id, sum(requests) as requests, sum(tokens) as tokens,
                   sum(prompt_tokens) as prompt,
                   sum(completion_tokens) as completion, sum(cost) as cost, sum(failures) as failures,
                   sum(cancelled) as cancelled, sum(unpriced_requests) as unpriced,
                   sum(attempts) as attempts, sum(failed_attempts) as failed_attempts,
                   sum(cache_hits) as cache_hits, sum(estimated_requests) as estimated,
                   sum(cached_tokens) as cached, sum(cache_creation_tokens) as cache_creation,
                   sum(reasoning_tokens) as reasoning, sum(audio_tokens) as audio, sum(saved_cost) as saved
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
               l.unpriced as l_unpriced, r.unpriced as r_unpriced, p.unpriced_count as p_unpriced,
               l.attempts as l_attempts, r.attempts as r_attempts, p.attempt_count as p_attempts,
               l.failed_attempts as l_failed_attempts, r.failed_attempts as r_failed_attempts,
               p.failed_attempt_count as p_failed_attempts,
               l.cache_hits as l_cache_hits, r.cache_hits as r_cache_hits, p.cache_hit_count as p_cache_hits,
               l.estimated as l_estimated, r.estimated as r_estimated, p.estimated_count as p_estimated,
               l.cached as l_cached, r.cached as r_cached, p.cached_tokens as p_cached,
               l.cache_creation as l_cache_creation, r.cache_creation as r_cache_creation,
               p.cache_creation_tokens as p_cache_creation,
               l.reasoning as l_reasoning, r.reasoning as r_reasoning, p.reasoning_tokens as p_reasoning,
               l.audio as l_audio, r.audio as r_audio, p.audio_tokens as p_audio,
               l.saved as l_saved, r.saved as r_saved, p.saved_cost as p_saved
          from logs l
          full join rollup r on r.user_id = l.user_id
          full join user_profiles p on p.user_id = coalesce(l.user_id, r.user_id)
        """
    )
    for row in rows:
        anonymous = row["user_id"] is None
        for what in LEDGER_MEASURES:
            logged, rolled = row[f"l_{what}"] or 0, row[f"r_{what}"] or 0
            assert logged == rolled, f"{row['user_id']}: {what} ledger {logged} != rollup {rolled}"
            if not anonymous:
                counter = row[f"p_{what}"] or 0
                assert counter == logged, f"{row['user_id']}: {what} counter {counter} != ledger {logged}"
    assert_rollups_agree(db)
    assert_attempts_match_calls(db)


LEDGER_MEASURES = (
    "requests",
    "tokens",
    "prompt",
    "completion",
    "cost",
    "failures",
    "cancelled",
    "unpriced",
    "attempts",
    "failed_attempts",
    "cache_hits",
    "estimated",
    "cached",
    "cache_creation",
    "reasoning",
    "audio",
    "saved",
)


def assert_attempts_match_calls(db: Database) -> None:
    """Every call with recorded attempts: attempt_count and failed_attempts count them, its status is the best
    of theirs (success > cancelled > failure) and its tokens are the sums over the attempts with that status."""
    bad = db.fetch_all(
        """
        with a as (
            select call_key, count(*) as attempts, count(*) filter (where status = 'failure') as failed,
                   max(llmtally_status_rank(status)) as best
              from request_attempts group by call_key
        ), billed as (
            select x.call_key, sum(x.prompt_tokens) as prompt, sum(x.completion_tokens) as completion,
                   sum(x.tokens_used) as tokens, sum(x.cached_tokens) as cached,
                   sum(x.reasoning_tokens) as reasoning
              from request_attempts x join a on a.call_key = x.call_key
             where llmtally_status_rank(x.status) = a.best
             group by x.call_key
        )
        select l.call_key, l.attempt_count, a.attempts, l.failed_attempts, a.failed, l.status, a.best,
               l.prompt_tokens, b.prompt, l.completion_tokens, b.completion, l.tokens_used, b.tokens,
               l.cached_tokens, b.cached, l.reasoning_tokens, b.reasoning
          from request_logs l join a on a.call_key = l.call_key join billed b on b.call_key = l.call_key
         where (l.attempt_count, l.failed_attempts, llmtally_status_rank(l.status), l.prompt_tokens,
                l.completion_tokens, l.tokens_used, l.cached_tokens, l.reasoning_tokens)
               is distinct from (a.attempts::int, a.failed::int, a.best, b.prompt::int, b.completion::int,
                                 b.tokens::int, b.cached::int, b.reasoning::int)
         limit 5
        """
    )
    assert not bad, f"calls that differ from their attempts: {bad}"
    orphans = db.fetch_one(
        "select count(*) as n from request_attempts a"
        " where not exists (select from request_logs l where l.call_key = a.call_key)"
    )
    assert orphans is not None and orphans["n"] == 0, "attempts without their call"


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
    "attempts",
    "failed_attempts",
    "cache_hits",
    "estimated_requests",
    "cached_tokens",
    "cache_creation_tokens",
    "reasoning_tokens",
    "audio_tokens",
    "saved_cost",
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
               p.failure_count, p.cancelled_count, p.unpriced_count, p.attempt_count, p.failed_attempt_count,
               p.cache_hit_count, p.cached_tokens, p.reasoning_tokens,
               coalesce(sum(d.requests), 0) as r_requests, coalesce(sum(d.tokens), 0) as r_tokens,
               coalesce(sum(d.prompt_tokens), 0) as r_prompt, coalesce(sum(d.completion_tokens), 0) as r_completion,
               coalesce(sum(d.cost), 0) as r_cost, coalesce(sum(d.failures), 0) as r_failures,
               coalesce(sum(d.cancelled), 0) as r_cancelled, coalesce(sum(d.unpriced_requests), 0) as r_unpriced,
               coalesce(sum(d.attempts), 0) as r_attempts, coalesce(sum(d.failed_attempts), 0) as r_failed_attempts,
               coalesce(sum(d.cache_hits), 0) as r_cache_hits, coalesce(sum(d.cached_tokens), 0) as r_cached,
               coalesce(sum(d.reasoning_tokens), 0) as r_reasoning
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
        "attempt_count": "r_attempts",
        "failed_attempt_count": "r_failed_attempts",
        "cache_hit_count": "r_cache_hits",
        "cached_tokens": "r_cached",
        "reasoning_tokens": "r_reasoning",
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
