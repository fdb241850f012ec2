-- llmtally 0001: the usage ledger, its counters and rollup, analytics views and row-level security.
--
-- Runs unchanged on Supabase and on plain PostgreSQL >= 15. On plain PostgreSQL it first creates,
-- idempotently, what Supabase provides: the roles anon / authenticated / service_role and the
-- auth.uid() / auth.jwt() / auth.role() functions reading request.jwt.claims. Where they exist
-- (Supabase) they are left alone.

-- ---------------------------------------------------------------------------------------------
-- Supabase's roles and auth functions, where missing
-- ---------------------------------------------------------------------------------------------
do $$
declare
    r text;
begin
    foreach r in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select from pg_catalog.pg_roles where rolname = r) then
            begin
                if r = 'service_role' then
                    execute format('create role %I nologin noinherit bypassrls', r);
                else
                    execute format('create role %I nologin noinherit', r);
                end if;
            exception when duplicate_object or unique_violation then
                null;  -- created concurrently by a migration of another database in this cluster
            end;
        end if;
        -- the migrating role must be able to switch to these roles, as PostgREST's authenticator does
        if not pg_catalog.pg_has_role(current_user, r, 'MEMBER') then
            begin
                execute format('grant %I to %I', r, current_user);
            exception when others then
                raise notice 'llmtally: could not grant % to %: %', r, current_user, sqlerrm;
            end;
        end if;
    end loop;
end
$$;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

do $$
begin
    if to_regprocedure('auth.jwt()') is null then
        create function auth.jwt() returns jsonb
            language sql stable
            set search_path = ''
        as $f$
            select coalesce(
                nullif(pg_catalog.current_setting('request.jwt.claim', true), ''),
                nullif(pg_catalog.current_setting('request.jwt.claims', true), '')
            )::jsonb
        $f$;
        comment on function auth.jwt() is 'llmtally stand-in for Supabase auth.jwt(): the request''s JWT claims';
    end if;
    if to_regprocedure('auth.uid()') is null then
        create function auth.uid() returns uuid
            language sql stable
            set search_path = ''
        as $f$
            select coalesce(
                nullif(pg_catalog.current_setting('request.jwt.claim.sub', true), ''),
                (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $f$;
        comment on function auth.uid() is 'llmtally stand-in for Supabase auth.uid()';
    end if;
    if to_regprocedure('auth.role()') is null then
        create function auth.role() returns text
            language sql stable
            set search_path = ''
        as $f$
            select coalesce(
                nullif(pg_catalog.current_setting('request.jwt.claim.role', true), ''),
                (nullif(pg_catalog.current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
            )::text
        $f$;
        comment on function auth.role() is 'llmtally stand-in for Supabase auth.role()';
    end if;
end
$$;

grant execute on function auth.jwt(), auth.uid(), auth.role() to anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
create table public.user_profiles (
    user_id           text primary key check (user_id <> ''),
    email             text,
    full_name         text,
    provider          text,
    tokens_used       bigint  not null default 0 check (tokens_used >= 0),
    prompt_tokens     bigint  not null default 0 check (prompt_tokens >= 0),
    completion_tokens bigint  not null default 0 check (completion_tokens >= 0),
    total_cost        numeric not null default 0 check (total_cost >= 0),
    request_count     bigint  not null default 0 check (request_count >= 0),
    success_count     bigint  not null default 0 check (success_count >= 0),
    failure_count     bigint  not null default 0 check (failure_count >= 0),
    cancelled_count   bigint  not null default 0 check (cancelled_count >= 0),
    unpriced_count    bigint  not null default 0 check (unpriced_count >= 0),
    first_request_at  timestamptz,
    last_request_at   timestamptz,
    created_at        timestamptz not null default now(),
    last_seen_at      timestamptz
);
comment on table public.user_profiles is
    'One row per authenticated user (provider-qualified id); lifetime counters kept by triggers on request_logs.';

create table public.sessions (
    session_id   text primary key check (session_id <> ''),
    user_id      text not null references public.user_profiles (user_id) on delete cascade,
    created_at   timestamptz not null default now(),
    last_seen_at timestamptz not null default now()
);
create index sessions_user_id_idx on public.sessions (user_id);
comment on table public.sessions is 'Maps a chat/session id to the authenticated user, for calls that carry only the session.';

create table public.request_logs (
    id                bigint generated always as identity primary key,
    user_profile_id   text references public.user_profiles (user_id) on delete set null
                          deferrable initially deferred,
    end_user          text,
    session_id        text,
    litellm_call_id   text not null unique,
    model             text not null,
    provider          text not null default 'unknown',
    prompt_tokens     integer not null default 0 check (prompt_tokens >= 0),
    completion_tokens integer not null default 0 check (completion_tokens >= 0),
    tokens_used       integer not null default 0 check (tokens_used >= 0),
    total_cost        numeric check (total_cost >= 0),
    cost_status       text not null check (cost_status in ('priced', 'recomputed', 'unpriced', 'custom')),
    messages          jsonb,
    response          jsonb,
    status            text not null check (status in ('success', 'failure', 'cancelled')),
    error             text,
    error_type        text,
    latency_ms        integer check (latency_ms >= 0),
    stream            boolean not null default false,
    metadata          jsonb not null default '{}'::jsonb,
    created_at        timestamptz not null default now(),
    check ((cost_status = 'unpriced') = (total_cost is null))
);
create index request_logs_user_created_idx on public.request_logs (user_profile_id, created_at desc, id desc);
create index request_logs_created_idx on public.request_logs (created_at);
comment on table public.request_logs is 'The ledger: one row per LLM call, keyed by litellm_call_id (idempotent).';

create table public.usage_daily (
    user_id           text references public.user_profiles (user_id) on delete cascade
                          deferrable initially deferred,
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
    constraint usage_daily_key unique nulls not distinct (user_id, day, model, provider)
);
create index usage_daily_day_idx on public.usage_daily (day);
comment on table public.usage_daily is
    'Rollup: one row per user x UTC day x model x provider (user_id NULL = anonymous), kept in the writing transaction.';

create table public.model_prices (
    model                 text primary key check (model <> ''),
    input_cost_per_token  numeric not null check (input_cost_per_token >= 0),
    output_cost_per_token numeric not null check (output_cost_per_token >= 0),
    updated_at            timestamptz not null default now()
);
comment on table public.model_prices is 'Custom prices (USD per token); they win over LiteLLM''s price map.';

-- ---------------------------------------------------------------------------------------------
-- Counters and rollup: statement-level triggers, one upsert per user (and per rollup key) per batch
-- ---------------------------------------------------------------------------------------------
-- One function serves INSERT and UPDATE (e.g. a reprice): rows leaving (old_rows) are subtracted
-- from the keys they counted in, rows arriving (new_rows) are added with one upsert per key. Keys are
-- taken in sorted order so concurrent writers lock rows in the same order and cannot deadlock.
create function public.llmtally_apply_usage() returns trigger
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
          from (select user_profile_id, (created_at at time zone 'UTC')::date as day, model, provider,
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
                 order by 1, 2, 3, 4) d
         where u.user_id is not distinct from d.user_profile_id
           and u.day = d.day and u.model = d.model and u.provider = d.provider;
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

    insert into public.usage_daily as u (
        user_id, day, model, provider, requests, successes, failures, cancelled,
        prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
    select user_profile_id, (created_at at time zone 'UTC')::date, model, provider,
           count(*),
           count(*) filter (where status = 'success'),
           count(*) filter (where status = 'failure'),
           count(*) filter (where status = 'cancelled'),
           sum(prompt_tokens), sum(completion_tokens), sum(tokens_used),
           coalesce(sum(total_cost), 0),
           count(*) filter (where cost_status = 'unpriced'),
           coalesce(sum(latency_ms), 0)
      from new_rows
     group by 1, 2, 3, 4
     order by 1, 2, 3, 4
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
        latency_ms_sum    = u.latency_ms_sum + excluded.latency_ms_sum;
    return null;
end
$$;

create trigger request_logs_usage_insert
    after insert on public.request_logs
    referencing new table as new_rows
    for each statement execute function public.llmtally_apply_usage();

create trigger request_logs_usage_update
    after update on public.request_logs
    referencing old table as old_rows new table as new_rows
    for each statement execute function public.llmtally_apply_usage();

-- ---------------------------------------------------------------------------------------------
-- Views (security_invoker: they apply the reader's row-level security)
-- ---------------------------------------------------------------------------------------------
create view public.user_request_analytics with (security_invoker = true) as
select p.user_id,
       p.email,
       p.full_name,
       p.provider,
       p.request_count as total_requests,
       p.success_count as successful_requests,
       p.failure_count as failed_requests,
       p.cancelled_count as cancelled_requests,
       case when p.request_count > 0
            then round(p.failure_count::numeric / p.request_count, 4) end as error_rate,
       p.prompt_tokens,
       p.completion_tokens,
       p.tokens_used as total_tokens,
       p.total_cost,
       p.unpriced_count as unpriced_requests,
       array(select distinct d.model from public.usage_daily d where d.user_id = p.user_id order by 1)
           as models_used,
       p.first_request_at,
       p.last_request_at
  from public.user_profiles p;

create view public.monthly_token_usage with (security_invoker = true) as
with by_model as (
    select user_id, date_trunc('month', day)::date as month, model,
           sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost
      from public.usage_daily
     group by 1, 2, 3
), by_provider as (
    select user_id, date_trunc('month', day)::date as month, provider,
           sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost
      from public.usage_daily
     group by 1, 2, 3
), totals as (
    select user_id, date_trunc('month', day)::date as month,
           sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
           sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
           sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as total_cost
      from public.usage_daily
     group by 1, 2
)
select t.user_id, t.month, t.requests, t.successes, t.failures, t.cancelled,
       t.prompt_tokens, t.completion_tokens, t.total_tokens, t.total_cost,
       (select jsonb_object_agg(m.model, jsonb_build_object('requests', m.requests, 'tokens', m.tokens, 'cost', m.cost))
          from by_model m where m.user_id is not distinct from t.user_id and m.month = t.month) as model_breakdown,
       (select jsonb_object_agg(v.provider, jsonb_build_object('requests', v.requests, 'tokens', v.tokens, 'cost', v.cost))
          from by_provider v where v.user_id is not distinct from t.user_id and v.month = t.month) as provider_breakdown
  from totals t;

create view public.user_recent_activity with (security_invoker = true) as
select d.user_id, d.day,
       sum(d.requests) as requests, sum(d.failures) as failures, sum(d.tokens) as tokens, sum(d.cost) as cost,
       array_agg(distinct d.model order by d.model) as models
  from public.usage_daily d
 where d.day >= (now() at time zone 'UTC')::date - 29
 group by d.user_id, d.day;

-- ---------------------------------------------------------------------------------------------
-- Row-level security and grants: users read only their own rows; only the server writes
-- ---------------------------------------------------------------------------------------------
alter table public.user_profiles enable row level security;
alter table public.sessions      enable row level security;
alter table public.request_logs  enable row level security;
alter table public.usage_daily   enable row level security;
alter table public.model_prices  enable row level security;

create policy user_profiles_read_own on public.user_profiles
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
create policy sessions_read_own on public.sessions
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
create policy request_logs_read_own on public.request_logs
    for select to authenticated using (user_profile_id = ((select auth.jwt()) ->> 'sub'));
create policy usage_daily_read_own on public.usage_daily
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
-- model_prices: no policy, so only the server (table owner, service_role) reads or writes it.

-- Supabase grants everything in public to anon and authenticated by default: take it back.
revoke all on table public.user_profiles, public.sessions, public.request_logs, public.usage_daily,
    public.model_prices, public.llmtally_migrations, public.user_request_analytics, public.monthly_token_usage, public.user_recent_activity
    from public, anon, authenticated;
revoke all on sequence public.request_logs_id_seq from public, anon, authenticated;
revoke all on function public.llmtally_apply_usage() from public, anon, authenticated;

grant select on table public.user_profiles, public.sessions, public.request_logs, public.usage_daily,
    public.user_request_analytics, public.monthly_token_usage, public.user_recent_activity
    to authenticated;
grant all on table public.user_profiles, public.sessions, public.request_logs, public.usage_daily,
    public.model_prices, public.user_request_analytics, public.monthly_token_usage, public.user_recent_activity
    to service_role;
grant usage on sequence public.request_logs_id_seq to service_role;
