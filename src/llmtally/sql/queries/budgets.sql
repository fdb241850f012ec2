-- Budgets, rate limits, reservations and alerts (llmtally.budgets, the web pages and the chat's usage
-- panel). A line "-- name --" starts a query.

-- profile_exists --
select 1 as one from public.user_profiles where user_id = %s

-- set_budget --
insert into public.budgets as b (user_profile_id, period, limit_usd, limit_tokens, hard, thresholds, timezone)
values (%(user)s, %(period)s, %(usd)s, %(tokens)s, %(hard)s, %(thresholds)s, %(tz)s)
on conflict on constraint budgets_user_period_key do update set
    limit_usd = excluded.limit_usd,
    limit_tokens = excluded.limit_tokens,
    hard = excluded.hard,
    thresholds = excluded.thresholds,
    timezone = excluded.timezone,
    updated_at = now()
returning id, user_profile_id, period, limit_usd, limit_tokens, hard, thresholds, timezone, updated_at

-- delete_budget --
delete from public.budgets where user_profile_id is not distinct from %s and period = %s

-- list_budgets --
-- Every budget (%(user)s null), or one user's with the defaults that apply to them.
select id, user_profile_id, period, limit_usd, limit_tokens, hard, thresholds, timezone, updated_at
  from public.budgets
 where %(user)s::text is null or user_profile_id = %(user)s or user_profile_id is null
 order by user_profile_id nulls first, array_position(array['daily','weekly','monthly','lifetime'], period)

-- budget_status --
select budget_id, owner, period, limit_usd, limit_tokens, hard, timezone, period_start, period_end,
       spent_usd, spent_tokens, reserved_usd, reserved_tokens
  from public.llmtally_budget_usage(%s, coalesce(%s, now()))

-- budgets_in_force --
-- A user's budgets in force and what remains: read as the user (row-level security) by /usage and the
-- chat's usage panel, as the server by the admin's page of that user.
select period, hard, limit_usd, limit_tokens, spent_usd, spent_tokens, reserved_usd, reserved_tokens,
       remaining_usd, remaining_tokens, period_end
  from public.user_budget_status
 where user_id = %(user)s
 order by period

-- set_rate_limit --
insert into public.rate_limits as r (user_profile_id, rpm, tpm) values (%s, %s, %s)
on conflict on constraint rate_limits_user_key do update set
    rpm = excluded.rpm, tpm = excluded.tpm, updated_at = now()

-- rate_limit_in_force --
-- The user's own row, else the default (user_profile_id null).
select user_profile_id, rpm, tpm from public.rate_limits
 where user_profile_id = %(user)s or user_profile_id is null
 order by user_profile_id nulls last
 limit 1

-- delete_rate_limit --
delete from public.rate_limits where user_profile_id is not distinct from %s

-- list_alerts --
select id, user_id, budget_id, period, period_start, threshold, limit_usd, limit_tokens, spent_usd,
       spent_tokens, hard, created_at
  from public.budget_alerts
 where %(user)s::text is null or user_id = %(user)s
 order by id

-- alerts_to_deliver --
-- Locked until the delivering transaction ends; another process skips them.
select id, user_id, budget_id, period, period_start, threshold, limit_usd, limit_tokens, spent_usd,
       spent_tokens, hard, created_at
  from public.budget_alerts
 where notified_at is null
 order by id
 limit 100
   for update skip locked

-- mark_alert_notified --
update public.budget_alerts set notified_at = now() where id = %s

-- reserve --
-- The reservation; a refused one is counted in refusals in the same statement (migration 0021), under
-- the per-user lock llmtally_reserve took. The decision is evaluated once (a CTE referenced twice).
-- Committed without waiting for the WAL flush (synchronous_commit off for this transaction only): a
-- reservation lives for one call, and its commit is on the path of every call. Other sessions see it as
-- soon as it commits, as always, so concurrent reservations are decided exactly as before; only a crash
-- of the database server in the next fraction of a second (wal_writer_delay) could lose it.
with async_commit as (
    select pg_catalog.set_config('synchronous_commit', 'off', true)
), decision as (
    select * from public.llmtally_reserve(%(user_id)s, %(call_id)s, %(model)s, %(provider)s, %(prompt_tokens)s,
                                          %(completion_tokens)s, %(usd)s, %(ttl_s)s,
                                          coalesce(%(at)s::timestamptz, now()))
), counted as (
    insert into public.refusals as r (day, user_id, reason, model, refused, last_at)
    select (coalesce(%(at)s::timestamptz, now()) at time zone 'UTC')::date, %(user_id)s, d.reason,
           coalesce(%(model)s, ''), 1, coalesce(%(at)s::timestamptz, now())
      from decision d
     where not d.allowed
    on conflict (day, user_id, reason, model) do update
       set refused = r.refused + 1, last_at = greatest(r.last_at, excluded.last_at)
)
select d.* from decision d cross join async_commit

-- release_reservation --
select public.llmtally_release(%s) as released

-- settle_failed_reservation --
select public.llmtally_settle_failed(%s) as settled

-- list_rate_limits --
-- Every rate limit: the default (user_profile_id null) first, then users in id order.
select user_profile_id, rpm, tpm from public.rate_limits order by user_profile_id nulls first
