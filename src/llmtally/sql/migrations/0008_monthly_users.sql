-- llmtally 0008: usage_monthly_users, one row per user x UTC month (all models together).
--
-- "Top users this month" read one usage_monthly row per active user and model of the month and summed
-- them per user: about 20,000 rows at 1 M request_logs rows, more as the ledger grows. This rollup
-- keeps the sums per user and month, and its index on (month, cost desc, ...) hands over the month's
-- top users in order, so the dashboard reads as many rows as it shows. Periods made of several months
-- or of days around whole months sum these rows instead (one per active user and month).
--
-- It is kept by its own statement-level triggers in the writing transaction, like the rollups of 0001
-- and 0004 (sorted key order: concurrent writers lock rows in the same order), and it always equals
-- the sums of usage_monthly per user and month (tests/support/invariants.py). The backfill below derives it
-- from usage_monthly.

-- The backfill below fills a table whose foreign key is deferred, which is then altered: check the
-- keys at once, or PostgreSQL refuses the ALTER ("pending trigger events") when the database holds usage.
set constraints all immediate;

create table public.usage_monthly_users (
    user_id           text references public.user_profiles (user_id) on delete cascade
                          deferrable initially deferred,
    month             date not null check (month = date_trunc('month', month)::date),
    requests          bigint  not null default 0 check (requests >= 0),
    successes         bigint  not null default 0 check (successes >= 0),
    failures          bigint  not null default 0 check (failures >= 0),
    cancelled         bigint  not null default 0 check (cancelled >= 0),
    prompt_tokens     bigint  not null default 0 check (prompt_tokens >= 0),
    completion_tokens bigint  not null default 0 check (completion_tokens >= 0),
    tokens            bigint  not null default 0 check (tokens >= 0),
    cost              numeric not null default 0 check (cost >= 0),
    unpriced_requests bigint  not null default 0 check (unpriced_requests >= 0),
    latency_ms_sum    bigint  not null default 0,
    constraint usage_monthly_users_key unique nulls not distinct (user_id, month)
);
create index usage_monthly_users_top_idx
    on public.usage_monthly_users (month, cost desc, tokens desc, user_id);
comment on table public.usage_monthly_users is
    'Rollup: one row per user x UTC month, all models (user_id NULL = anonymous); = sums of usage_monthly.';

insert into public.usage_monthly_users (
    user_id, month, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
    unpriced_requests, latency_ms_sum)
select user_id, month, sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens),
       sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum)
  from public.usage_monthly
 group by 1, 2;

-- Rows leaving (old_rows, on UPDATE) are subtracted from the months they counted in; rows arriving
-- (new_rows) are added.
create function public.llmtally_apply_usage_monthly_users() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' then
        update public.usage_monthly_users u set
            requests          = u.requests - d.requests,
            successes         = u.successes - d.successes,
            failures          = u.failures - d.failures,
            cancelled         = u.cancelled - d.cancelled,
            prompt_tokens     = u.prompt_tokens - d.prompt_tokens,
            completion_tokens = u.completion_tokens - d.completion_tokens,
            tokens            = u.tokens - d.tokens,
            cost              = u.cost - d.cost,
            unpriced_requests = u.unpriced_requests - d.unpriced_requests,
            latency_ms_sum    = u.latency_ms_sum - d.latency_ms_sum
          from (select user_profile_id as user_id,
                       date_trunc('month', created_at at time zone 'UTC')::date as month,
                       count(*) as requests,
                       count(*) filter (where status = 'success') as successes,
                       count(*) filter (where status = 'failure') as failures,
                       count(*) filter (where status = 'cancelled') as cancelled,
                       sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
                       sum(tokens_used) as tokens, coalesce(sum(total_cost), 0) as cost,
                       count(*) filter (where cost_status = 'unpriced') as unpriced_requests,
                       coalesce(sum(latency_ms), 0) as latency_ms_sum
                  from old_rows
                 group by 1, 2
                 order by 1, 2) d
         where u.user_id is not distinct from d.user_id and u.month = d.month;
    end if;

    insert into public.usage_monthly_users as u (
        user_id, month, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens,
        cost, unpriced_requests, latency_ms_sum)
    select user_profile_id, date_trunc('month', created_at at time zone 'UTC')::date,
           count(*),
           count(*) filter (where status = 'success'),
           count(*) filter (where status = 'failure'),
           count(*) filter (where status = 'cancelled'),
           sum(prompt_tokens), sum(completion_tokens), sum(tokens_used), coalesce(sum(total_cost), 0),
           count(*) filter (where cost_status = 'unpriced'),
           coalesce(sum(latency_ms), 0)
      from new_rows
     group by 1, 2
     order by 1, 2
    on conflict on constraint usage_monthly_users_key do update set
        requests          = u.requests + excluded.requests,
        successes         = u.successes + excluded.successes,
        failures          = u.failures + excluded.failures,
        cancelled         = u.cancelled + excluded.cancelled,
        prompt_tokens     = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = u.completion_tokens + excluded.completion_tokens,
        tokens            = u.tokens + excluded.tokens,
        cost              = u.cost + excluded.cost,
        unpriced_requests = u.unpriced_requests + excluded.unpriced_requests,
        latency_ms_sum    = u.latency_ms_sum + excluded.latency_ms_sum;
    return null;
end
$$;
comment on function public.llmtally_apply_usage_monthly_users() is
    'Statement trigger on request_logs: keeps usage_monthly_users equal to the ledger per user and month.';
revoke all on function public.llmtally_apply_usage_monthly_users() from public, anon, authenticated;

create trigger request_logs_usage_monthly_users_insert
    after insert on public.request_logs
    referencing new table as new_rows
    for each statement execute function public.llmtally_apply_usage_monthly_users();

create trigger request_logs_usage_monthly_users_update
    after update on public.request_logs
    referencing old table as old_rows new table as new_rows
    for each statement execute function public.llmtally_apply_usage_monthly_users();

-- Row-level security: a user reads their own months; nobody but the server writes.
alter table public.usage_monthly_users enable row level security;

create policy usage_monthly_users_read_own on public.usage_monthly_users
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));

revoke all on table public.usage_monthly_users from public, anon, authenticated;
grant select on table public.usage_monthly_users to authenticated;
grant all on table public.usage_monthly_users to service_role;
