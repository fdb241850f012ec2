-- llmtally 0004: two more rollups, kept by the same trigger in the writing transaction.
--
--   usage_monthly       user x month (UTC) x model x provider: a user's monthly usage and model
--                       breakdown, and "top users this month", read a few rows instead of every day.
--   usage_daily_totals  UTC day x model x provider, all users together: the admin dashboard's cost,
--                       tokens, requests and failures over time, and error rate by model.
--
-- Both are sums of usage_daily and stay exactly equal to them: the trigger aggregates each batch once
-- and adds it to the three rollups in one statement, in sorted key order (concurrent writers lock rows
-- in the same order and cannot deadlock). The backfill below derives them from usage_daily.

create table public.usage_monthly (
    user_id           text references public.user_profiles (user_id) on delete cascade
                          deferrable initially deferred,
    month             date not null check (month = date_trunc('month', month)::date),
    model             text not null,
    provider          text not null,
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
    constraint usage_monthly_key unique nulls not distinct (user_id, month, model, provider)
);
create index usage_monthly_month_idx on public.usage_monthly (month);
comment on table public.usage_monthly is
    'Rollup: one row per user x UTC month x model x provider (user_id NULL = anonymous); = sums of usage_daily.';

create table public.usage_daily_totals (
    day               date not null,
    model             text not null,
    provider          text not null,
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
    primary key (day, model, provider)
);
comment on table public.usage_daily_totals is
    'Rollup: one row per UTC day x model x provider over all users; = sums of usage_daily. Server only.';

insert into public.usage_monthly (
    user_id, month, model, provider, requests, successes, failures, cancelled,
    prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
select user_id, date_trunc('month', day)::date, model, provider, sum(requests), sum(successes), sum(failures),
       sum(cancelled), sum(prompt_tokens), sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests),
       sum(latency_ms_sum)
  from public.usage_daily
 group by 1, 2, 3, 4;

insert into public.usage_daily_totals (
    day, model, provider, requests, successes, failures, cancelled,
    prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
select day, model, provider, sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens),
       sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum)
  from public.usage_daily
 group by 1, 2, 3;

-- The trigger function of 0001, now feeding three rollups. Rows leaving (old_rows, on UPDATE) are
-- subtracted from every key they counted in; rows arriving (new_rows) are added.
create or replace function public.llmtally_apply_usage() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' then
        update public.user_profiles p set
            tokens_used       = p.tokens_used - d.tokens_used,
            prompt_tokens     = p.prompt_tokens - d.prompt_tokens,
            completion_tokens = p.completion_tokens - d.completion_tokens,
            total_cost        = p.total_cost - d.total_cost,
            request_count     = p.request_count - d.request_count,
            success_count     = p.success_count - d.success_count,
            failure_count     = p.failure_count - d.failure_count,
            cancelled_count   = p.cancelled_count - d.cancelled_count,
            unpriced_count    = p.unpriced_count - d.unpriced_count
          from (select user_profile_id,
                       sum(tokens_used) as tokens_used, sum(prompt_tokens) as prompt_tokens,
                       sum(completion_tokens) as completion_tokens, coalesce(sum(total_cost), 0) as total_cost,
                       count(*) as request_count,
                       count(*) filter (where status = 'success') as success_count,
                       count(*) filter (where status = 'failure') as failure_count,
                       count(*) filter (where status = 'cancelled') as cancelled_count,
                       count(*) filter (where cost_status = 'unpriced') as unpriced_count
                  from old_rows
                 where user_profile_id is not null
                 group by user_profile_id
                 order by user_profile_id) d
         where p.user_id = d.user_profile_id;

        with agg as materialized (
            select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
                   count(*) as requests,
                   count(*) filter (where status = 'success') as successes,
                   count(*) filter (where status = 'failure') as failures,
                   count(*) filter (where status = 'cancelled') as cancelled,
                   sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
                   sum(tokens_used) as tokens, coalesce(sum(total_cost), 0) as cost,
                   count(*) filter (where cost_status = 'unpriced') as unpriced_requests,
                   coalesce(sum(latency_ms), 0) as latency_ms_sum
              from old_rows
             group by 1, 2, 3, 4
        ), daily as (
            update public.usage_daily u set
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
              from (select * from agg order by user_id, day, model, provider) d
             where u.user_id is not distinct from d.user_id
               and u.day = d.day and u.model = d.model and u.provider = d.provider
        ), monthly as (
            update public.usage_monthly u set
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
              from (select user_id, date_trunc('month', day)::date as month, model, provider,
                           sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
                           sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
                           sum(completion_tokens) as completion_tokens, sum(tokens) as tokens, sum(cost) as cost,
                           sum(unpriced_requests) as unpriced_requests, sum(latency_ms_sum) as latency_ms_sum
                      from agg group by 1, 2, 3, 4 order by 1, 2, 3, 4) d
             where u.user_id is not distinct from d.user_id
               and u.month = d.month and u.model = d.model and u.provider = d.provider
        )
        update public.usage_daily_totals u set
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
          from (select day, model, provider,
                       sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
                       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
                       sum(completion_tokens) as completion_tokens, sum(tokens) as tokens, sum(cost) as cost,
                       sum(unpriced_requests) as unpriced_requests, sum(latency_ms_sum) as latency_ms_sum
                  from agg group by 1, 2, 3 order by 1, 2, 3) d
         where u.day = d.day and u.model = d.model and u.provider = d.provider;
    end if;

    insert into public.user_profiles as p (
        user_id, tokens_used, prompt_tokens, completion_tokens, total_cost, request_count,
        success_count, failure_count, cancelled_count, unpriced_count, first_request_at, last_request_at)
    select user_profile_id,
           sum(tokens_used), sum(prompt_tokens), sum(completion_tokens), coalesce(sum(total_cost), 0), count(*),
           count(*) filter (where status = 'success'),
           count(*) filter (where status = 'failure'),
           count(*) filter (where status = 'cancelled'),
           count(*) filter (where cost_status = 'unpriced'),
           min(created_at), max(created_at)
      from new_rows
     where user_profile_id is not null
     group by user_profile_id
     order by user_profile_id
    on conflict (user_id) do update set
        tokens_used       = p.tokens_used + excluded.tokens_used,
        prompt_tokens     = p.prompt_tokens + excluded.prompt_tokens,
        completion_tokens = p.completion_tokens + excluded.completion_tokens,
        total_cost        = p.total_cost + excluded.total_cost,
        request_count     = p.request_count + excluded.request_count,
        success_count     = p.success_count + excluded.success_count,
        failure_count     = p.failure_count + excluded.failure_count,
        cancelled_count   = p.cancelled_count + excluded.cancelled_count,
        unpriced_count    = p.unpriced_count + excluded.unpriced_count,
        first_request_at  = least(p.first_request_at, excluded.first_request_at),
        last_request_at   = greatest(p.last_request_at, excluded.last_request_at);

    with agg as materialized (
        select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
               count(*) as requests,
               count(*) filter (where status = 'success') as successes,
               count(*) filter (where status = 'failure') as failures,
               count(*) filter (where status = 'cancelled') as cancelled,
               sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
               sum(tokens_used) as tokens, coalesce(sum(total_cost), 0) as cost,
               count(*) filter (where cost_status = 'unpriced') as unpriced_requests,
               coalesce(sum(latency_ms), 0) as latency_ms_sum
          from new_rows
         group by 1, 2, 3, 4
    ), daily as (
        insert into public.usage_daily as u (
            user_id, day, model, provider, requests, successes, failures, cancelled,
            prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
        select user_id, day, model, provider, requests, successes, failures, cancelled,
               prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum
          from agg
         order by user_id, day, model, provider
        on conflict on constraint usage_daily_key do update set
            requests          = u.requests + excluded.requests,
            successes         = u.successes + excluded.successes,
            failures          = u.failures + excluded.failures,
            cancelled         = u.cancelled + excluded.cancelled,
            prompt_tokens     = u.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = u.completion_tokens + excluded.completion_tokens,
            tokens            = u.tokens + excluded.tokens,
            cost              = u.cost + excluded.cost,
            unpriced_requests = u.unpriced_requests + excluded.unpriced_requests,
            latency_ms_sum    = u.latency_ms_sum + excluded.latency_ms_sum
    ), monthly as (
        insert into public.usage_monthly as u (
            user_id, month, model, provider, requests, successes, failures, cancelled,
            prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
        select user_id, date_trunc('month', day)::date, model, provider,
               sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens),
               sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum)
          from agg
         group by 1, 2, 3, 4
         order by 1, 2, 3, 4
        on conflict on constraint usage_monthly_key do update set
            requests          = u.requests + excluded.requests,
            successes         = u.successes + excluded.successes,
            failures          = u.failures + excluded.failures,
            cancelled         = u.cancelled + excluded.cancelled,
            prompt_tokens     = u.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = u.completion_tokens + excluded.completion_tokens,
            tokens            = u.tokens + excluded.tokens,
            cost              = u.cost + excluded.cost,
            unpriced_requests = u.unpriced_requests + excluded.unpriced_requests,
            latency_ms_sum    = u.latency_ms_sum + excluded.latency_ms_sum
    )
    insert into public.usage_daily_totals as u (
        day, model, provider, requests, successes, failures, cancelled,
        prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
    select day, model, provider,
           sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens),
           sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum)
      from agg
     group by 1, 2, 3
     order by 1, 2, 3
    on conflict (day, model, provider) do update set
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

-- Row-level security: a user reads their own monthly rows; the all-users totals are the server's.
alter table public.usage_monthly      enable row level security;
alter table public.usage_daily_totals enable row level security;

create policy usage_monthly_read_own on public.usage_monthly
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
-- usage_daily_totals: no policy, so only the server (table owner, service_role) reads it.

revoke all on table public.usage_monthly, public.usage_daily_totals from public, anon, authenticated;
grant select on table public.usage_monthly to authenticated;
grant all on table public.usage_monthly, public.usage_daily_totals to service_role;
