-- llmtally 0004: budgets and rate limits, reserved before a call and settled with its ledger row.
--
-- A call first reserves its worst case (public.llmtally_reserve): under a per-user advisory lock it
-- drops expired reservations, reads what the user spent in each budget's current period (from the
-- ledger itself) plus what is reserved, checks the rate limits, and either inserts the reservation
-- or returns why not. The ledger insert of the call (llmtally_insert_events -> request_logs) deletes
-- the reservation in the same transaction (trigger request_logs_usage_settle), so at every commit
-- spent + reserved covers every admitted call exactly once. Replays insert no row and settle nothing.
--
-- Spent is not a second counter: it is summed from request_logs (index on user, created_at) for
-- calendar periods and read from user_profiles for lifetime budgets, so it always equals the ledger.

-- ---------------------------------------------------------------------------------------------
-- Tables
-- ---------------------------------------------------------------------------------------------
-- One row per (user, period); user_profile_id NULL is the default for every user. A user's own
-- budget for a period replaces the default for that period; budgets of different periods all apply.
create table public.budgets (
    id              bigint generated always as identity primary key,
    user_profile_id text references public.user_profiles (user_id) on delete cascade,
    period          text not null check (period in ('daily', 'weekly', 'monthly', 'lifetime')),
    limit_usd       numeric check (limit_usd >= 0),
    limit_tokens    bigint check (limit_tokens >= 0),
    hard            boolean not null default true,
    thresholds      numeric[] not null default '{0.5,0.8,1.0}'
                        check (0 < all (thresholds) and cardinality(thresholds) <= 20),
    -- an unknown zone name makes this check raise "time zone ... not recognized"
    timezone        text not null default 'UTC'
                        check ((timestamptz '2000-01-01 00:00+00' at time zone timezone) is not null),
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    check (limit_usd is not null or limit_tokens is not null),
    constraint budgets_user_period_key unique nulls not distinct (user_profile_id, period)
);
comment on table public.budgets is
    'Spend and token budgets per period (user_profile_id NULL = default for everyone); hard ones refuse calls.';

-- Live reservations: the worst case of calls in flight. Deleted when the call's ledger row is
-- inserted, or by the user's next reservation once expired (a crashed process).
create table public.budget_reservations (
    litellm_call_id text primary key check (litellm_call_id <> ''),
    user_id         text not null check (user_id <> ''),
    model           text,
    usd             numeric not null default 0 check (usd >= 0),
    tokens          bigint  not null default 0 check (tokens >= 0),
    created_at      timestamptz not null default now(),
    expires_at      timestamptz not null
);
create index budget_reservations_user_idx on public.budget_reservations (user_id, expires_at);
comment on table public.budget_reservations is
    'Worst-case amounts reserved by calls in flight; settled by the ledger insert, released on expiry.';

-- Threshold warnings: one row per user x budget x period x threshold, whatever the concurrency.
create table public.budget_alerts (
    id              bigint generated always as identity primary key,
    user_id         text not null references public.user_profiles (user_id) on delete cascade,
    budget_id       bigint not null references public.budgets (id) on delete cascade,
    period          text not null,
    period_start    timestamptz,  -- NULL for a lifetime budget
    threshold       numeric not null,
    limit_usd       numeric,
    limit_tokens    bigint,
    spent_usd       numeric not null,
    spent_tokens    bigint not null,
    hard            boolean not null,
    created_at      timestamptz not null default now(),
    notified_at     timestamptz,
    constraint budget_alerts_once unique nulls not distinct (user_id, budget_id, period_start, threshold)
);
create index budget_alerts_pending_idx on public.budget_alerts (created_at) where notified_at is null;
comment on table public.budget_alerts is 'Budget thresholds crossed, raised once per period; notified_at set by the hook.';

-- Requests and tokens per minute; user_profile_id NULL is the default, a user's row replaces it.
create table public.rate_limits (
    id              bigint generated always as identity primary key,
    user_profile_id text references public.user_profiles (user_id) on delete cascade,
    rpm             integer check (rpm >= 0),
    tpm             bigint check (tpm >= 0),
    updated_at      timestamptz not null default now(),
    constraint rate_limits_user_key unique nulls not distinct (user_profile_id)
);
comment on table public.rate_limits is 'Requests and tokens per minute per user (user_profile_id NULL = default).';

-- The sliding one-minute window, shared by every process: one row per admitted call.
create table public.rate_limit_log (
    litellm_call_id text primary key,
    user_id         text not null,
    at              timestamptz not null,
    tokens          bigint not null default 0 check (tokens >= 0)
);
create index rate_limit_log_user_idx on public.rate_limit_log (user_id, at);
comment on table public.rate_limit_log is 'Calls admitted in the last minute (estimated tokens until settled).';

-- ---------------------------------------------------------------------------------------------
-- A user's budgets in force at a moment: limit, period bounds, spent, reserved
-- ---------------------------------------------------------------------------------------------
-- Periods are calendar-aligned in the budget's timezone: daily from local midnight, weekly from
-- Monday, monthly from the 1st; lifetime has no bounds (NULL). STABLE: spent and reserved are read in the
-- caller's one snapshot, so a settlement (ledger row in, reservation out) is seen whole or not at all.
create function public.llmtally_budget_usage(p_user text, p_at timestamptz)
    returns table (budget_id bigint, owner text, period text, limit_usd numeric, limit_tokens bigint,
                   hard boolean, thresholds numeric[], timezone text, period_start timestamptz,
                   period_end timestamptz, spent_usd numeric, spent_tokens bigint,
                   reserved_usd numeric, reserved_tokens bigint)
    language sql stable
    set search_path = ''
as $$
    select b.id, b.user_profile_id, b.period, b.limit_usd, b.limit_tokens, b.hard, b.thresholds, b.timezone,
           nullif(per.starts, '-infinity'), nullif(per.ends, 'infinity'), s.usd, s.tokens, r.usd, r.tokens
      from (select distinct on (x.period) x.*
              from public.budgets x
             where x.user_profile_id = p_user or x.user_profile_id is null
             order by x.period, x.user_profile_id nulls last) b
     cross join lateral (
            select case b.period when 'daily' then 'day' when 'weekly' then 'week' when 'monthly' then 'month' end
        ) unit(name)
     cross join lateral (
            select case when unit.name is null then '-infinity'::timestamptz
                        else pg_catalog.date_trunc(unit.name, p_at, b.timezone) end,
                   case when unit.name is null then 'infinity'::timestamptz
                        else (pg_catalog.date_trunc(unit.name, p_at at time zone b.timezone)
                              + ('1 ' || unit.name)::interval) at time zone b.timezone end
        ) per(starts, ends)
     cross join lateral (
            select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
              from (select l.total_cost as usd, l.tokens_used::bigint as tokens
                      from public.request_logs l
                     where unit.name is not null and l.user_profile_id = p_user
                       and l.created_at >= per.starts and l.created_at < per.ends
                    union all
                    select p.total_cost, p.tokens_used
                      from public.user_profiles p
                     where unit.name is null and p.user_id = p_user) x
        ) s(usd, tokens)
     cross join lateral (
            select coalesce(sum(rv.usd), 0)::numeric, coalesce(sum(rv.tokens), 0)::bigint
              from public.budget_reservations rv
             where rv.user_id = p_user and rv.expires_at > p_at
        ) r(usd, tokens)
     order by b.period
$$;
comment on function public.llmtally_budget_usage(text, timestamptz) is
    'The budgets in force for a user at a moment, with period bounds, spent (from the ledger) and reserved.';

-- What users read about themselves (row-level security applies: security_invoker). The same
-- computation as llmtally_budget_usage at now(), for the reader's own profile.
create view public.user_budget_status with (security_invoker = true) as
select p.user_id, b.id as budget_id, b.period, b.limit_usd, b.limit_tokens, b.hard, b.timezone,
       nullif(per.starts, '-infinity') as period_start, nullif(per.ends, 'infinity') as period_end,
       s.usd as spent_usd, s.tokens as spent_tokens, r.usd as reserved_usd, r.tokens as reserved_tokens,
       case when b.limit_usd is not null then greatest(b.limit_usd - s.usd - r.usd, 0) end as remaining_usd,
       case when b.limit_tokens is not null then greatest(b.limit_tokens - s.tokens - r.tokens, 0) end
           as remaining_tokens
  from public.user_profiles p
 cross join lateral (select distinct on (x.period) x.*
                       from public.budgets x
                      where x.user_profile_id = p.user_id or x.user_profile_id is null
                      order by x.period, x.user_profile_id nulls last) b
 cross join lateral (
        select case b.period when 'daily' then 'day' when 'weekly' then 'week' when 'monthly' then 'month' end
    ) unit(name)
 cross join lateral (
        select case when unit.name is null then '-infinity'::timestamptz
                    else date_trunc(unit.name, now(), b.timezone) end,
               case when unit.name is null then 'infinity'::timestamptz
                    else (date_trunc(unit.name, now() at time zone b.timezone)
                          + ('1 ' || unit.name)::interval) at time zone b.timezone end
    ) per(starts, ends)
 cross join lateral (
        select case when unit.name is null then p.total_cost
                    else (select coalesce(sum(l.total_cost), 0) from public.request_logs l
                           where l.user_profile_id = p.user_id
                             and l.created_at >= per.starts and l.created_at < per.ends) end,
               case when unit.name is null then p.tokens_used
                    else (select coalesce(sum(l.tokens_used), 0)::bigint from public.request_logs l
                           where l.user_profile_id = p.user_id
                             and l.created_at >= per.starts and l.created_at < per.ends) end
    ) s(usd, tokens)
 cross join lateral (
        select coalesce(sum(rv.usd), 0), coalesce(sum(rv.tokens), 0)::bigint
          from public.budget_reservations rv
         where rv.user_id = p.user_id and rv.expires_at > now()
    ) r(usd, tokens);

-- ---------------------------------------------------------------------------------------------
-- Reserve: admit a call or say why not
-- ---------------------------------------------------------------------------------------------
-- Estimated USD: a custom price in model_prices wins (as at insert), else p_estimated_usd (LiteLLM's
-- map); NULL means no price is known, and then a hard USD budget refuses the call (reason
-- 'unpriced') while token budgets and rate limits still apply. Idempotent per litellm_call_id.
create function public.llmtally_reserve(
    p_user text, p_call_id text, p_model text, p_provider text,
    p_prompt_tokens bigint, p_completion_tokens bigint, p_estimated_usd numeric,
    p_ttl_seconds integer default 600, p_at timestamptz default now())
    returns table (allowed boolean, reason text, period text, budget_unit text, limit_amount numeric,
                   spent numeric, reserved numeric, requested numeric, resets_at timestamptz,
                   retry_after_seconds numeric, estimated_usd numeric, estimated_tokens bigint)
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    est_tokens bigint := coalesce(p_prompt_tokens, 0) + coalesce(p_completion_tokens, 0);
    est_usd    numeric := p_estimated_usd;
    price      record;
    b          record;
    lim        record;
    n_requests bigint;
    n_tokens   bigint;
    wait_until timestamptz;
begin
    if coalesce(p_user, '') = '' or coalesce(p_call_id, '') = '' then
        raise exception 'llmtally_reserve needs a user and a call id' using errcode = '22023';
    end if;
    if p_prompt_tokens < 0 or p_completion_tokens < 0 or p_estimated_usd < 0 or p_ttl_seconds <= 0 then
        raise exception 'llmtally_reserve: negative estimate or non-positive ttl' using errcode = '22023';
    end if;
    -- Every reservation of this user, and every settlement raising its alerts, runs one at a time.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('llmtally.limits:' || p_user, 0));

    select mp.input_cost_per_token, mp.output_cost_per_token into price
      from public.model_prices mp
     where mp.model in (p_model, coalesce(p_provider, 'unknown') || '/' || p_model)
     order by mp.model = p_model desc
     limit 1;
    if found then
        est_usd := coalesce(p_prompt_tokens, 0) * price.input_cost_per_token
                   + coalesce(p_completion_tokens, 0) * price.output_cost_per_token;
    end if;

    delete from public.budget_reservations rv where rv.user_id = p_user and rv.expires_at <= p_at;
    if exists (select from public.budget_reservations rv where rv.litellm_call_id = p_call_id) then
        return query select true, null::text, null::text, null::text, null::numeric, null::numeric, null::numeric,
                            null::numeric, null::timestamptz, null::numeric, est_usd, est_tokens;
        return;
    end if;

    for b in select * from public.llmtally_budget_usage(p_user, p_at) u where u.hard loop
        if b.limit_usd is not null then
            if est_usd is null then
                return query select false, 'unpriced'::text, b.period, 'usd'::text, b.limit_usd, b.spent_usd,
                                    b.reserved_usd, null::numeric, b.period_end, null::numeric, est_usd, est_tokens;
                return;
            end if;
            if b.spent_usd + b.reserved_usd + est_usd > b.limit_usd then
                return query select false, 'budget'::text, b.period, 'usd'::text, b.limit_usd, b.spent_usd,
                                    b.reserved_usd, est_usd, b.period_end, null::numeric, est_usd, est_tokens;
                return;
            end if;
        end if;
        if b.limit_tokens is not null and b.spent_tokens + b.reserved_tokens + est_tokens > b.limit_tokens then
            return query select false, 'budget'::text, b.period, 'tokens'::text, b.limit_tokens::numeric,
                                b.spent_tokens::numeric, b.reserved_tokens::numeric, est_tokens::numeric,
                                b.period_end, null::numeric, est_usd, est_tokens;
            return;
        end if;
    end loop;

    select rl.rpm, rl.tpm into lim
      from public.rate_limits rl
     where rl.user_profile_id = p_user or rl.user_profile_id is null
     order by rl.user_profile_id nulls last
     limit 1;
    if found and (lim.rpm is not null or lim.tpm is not null) then
        delete from public.rate_limit_log l where l.user_id = p_user and l.at <= p_at - interval '1 minute';
        select count(*), coalesce(sum(l.tokens), 0) into n_requests, n_tokens
          from public.rate_limit_log l where l.user_id = p_user;
        if lim.rpm is not null and n_requests + 1 > lim.rpm then
            -- the window admits one more call when the (n - rpm + 1)-th oldest leaves it
            select l.at + interval '1 minute' into wait_until
              from public.rate_limit_log l where l.user_id = p_user
             order by l.at offset greatest(n_requests - lim.rpm, 0) limit 1;
            return query select false, 'rpm'::text, 'minute'::text, 'requests'::text, lim.rpm::numeric,
                                n_requests::numeric, 0::numeric, 1::numeric, wait_until,
                                greatest(extract(epoch from coalesce(wait_until, p_at + interval '1 minute') - p_at), 0),
                                est_usd, est_tokens;
            return;
        end if;
        if lim.tpm is not null and n_tokens + est_tokens > lim.tpm then
            -- the earliest moment enough tokens have left the window (NULL: this call alone is too big)
            select w.at + interval '1 minute' into wait_until
              from (select l.at, sum(l.tokens) over (order by l.at, l.litellm_call_id) as leaving
                      from public.rate_limit_log l where l.user_id = p_user) w
             where est_tokens <= lim.tpm and n_tokens - w.leaving + est_tokens <= lim.tpm
             order by w.at
             limit 1;
            return query select false, 'tpm'::text, 'minute'::text, 'tokens'::text, lim.tpm::numeric,
                                n_tokens::numeric, 0::numeric, est_tokens::numeric, wait_until,
                                case when wait_until is not null
                                     then greatest(extract(epoch from wait_until - p_at), 0) end,
                                est_usd, est_tokens;
            return;
        end if;
        insert into public.rate_limit_log (litellm_call_id, user_id, at, tokens)
        values (p_call_id, p_user, p_at, est_tokens)
        on conflict (litellm_call_id) do nothing;
    end if;

    insert into public.budget_reservations (litellm_call_id, user_id, model, usd, tokens, created_at, expires_at)
    values (p_call_id, p_user, p_model, coalesce(est_usd, 0), est_tokens, p_at,
            p_at + pg_catalog.make_interval(secs => p_ttl_seconds));
    return query select true, null::text, null::text, null::text, null::numeric, null::numeric, null::numeric,
                        null::numeric, null::timestamptz, null::numeric, est_usd, est_tokens;
end
$$;
comment on function public.llmtally_reserve(text, text, text, text, bigint, bigint, numeric, integer, timestamptz) is
    'Reserve the worst case of one call against the user''s hard budgets and rate limits, or say why not.';

-- Release a reservation whose call never reached the provider (nothing to record).
create function public.llmtally_release(p_call_id text) returns boolean
    language sql
    security definer
    set search_path = ''
as $$
    with gone as (delete from public.budget_reservations rv where rv.litellm_call_id = p_call_id returning 1),
         log as (delete from public.rate_limit_log l where l.litellm_call_id = p_call_id returning 1)
    select exists (select from gone);
$$;
comment on function public.llmtally_release(text) is 'Drop the reservation of a call that was never made.';

-- ---------------------------------------------------------------------------------------------
-- Settle: the ledger insert releases the reservations of its calls and raises threshold alerts
-- ---------------------------------------------------------------------------------------------
create function public.llmtally_settle_budgets() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    u text;
begin
    -- Lock each user concerned, in sorted order (no deadlock between writers): alerts below then
    -- see every earlier settlement of the same user, and no reservation of theirs runs meanwhile.
    for u in select x.user_id
               from (select n.user_profile_id as user_id from new_rows n where n.user_profile_id is not null
                     union
                     select rv.user_id from public.budget_reservations rv
                       join new_rows n on n.litellm_call_id = rv.litellm_call_id) x
              order by 1 loop
        perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('llmtally.limits:' || u, 0));
    end loop;

    delete from public.budget_reservations rv using new_rows n where rv.litellm_call_id = n.litellm_call_id;
    update public.rate_limit_log l set tokens = n.tokens_used
      from new_rows n where l.litellm_call_id = n.litellm_call_id;

    if exists (select from public.budgets) then
        -- The same computation as llmtally_budget_usage (spent only), for every user of the batch
        -- in one statement: one index range scan per user and budget, no per-user function call.
        insert into public.budget_alerts (user_id, budget_id, period, period_start, threshold, limit_usd,
                                          limit_tokens, spent_usd, spent_tokens, hard)
        select b.user_id, b.id, b.period, nullif(per.starts, '-infinity'), t.threshold, b.limit_usd,
               b.limit_tokens, s.usd, s.tokens, b.hard
          from (select distinct on (u.user_id, x.period) u.user_id, x.*
                  from (select distinct n.user_profile_id as user_id
                          from new_rows n where n.user_profile_id is not null) u
                  join public.budgets x on x.user_profile_id = u.user_id or x.user_profile_id is null
                 order by u.user_id, x.period, x.user_profile_id nulls last) b
         cross join lateral (
                select case b.period when 'daily' then 'day' when 'weekly' then 'week'
                                     when 'monthly' then 'month' end
            ) unit(name)
         cross join lateral (
                select case when unit.name is null then '-infinity'::timestamptz
                            else pg_catalog.date_trunc(unit.name, pg_catalog.now(), b.timezone) end,
                       case when unit.name is null then 'infinity'::timestamptz
                            else (pg_catalog.date_trunc(unit.name, pg_catalog.now() at time zone b.timezone)
                                  + ('1 ' || unit.name)::interval) at time zone b.timezone end
            ) per(starts, ends)
         cross join lateral (
                select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
                  from (select l.total_cost as usd, l.tokens_used::bigint as tokens
                          from public.request_logs l
                         where unit.name is not null and l.user_profile_id = b.user_id
                           and l.created_at >= per.starts and l.created_at < per.ends
                        union all
                        select p.total_cost, p.tokens_used
                          from public.user_profiles p
                         where unit.name is null and p.user_id = b.user_id) x
            ) s(usd, tokens)
         cross join lateral pg_catalog.unnest(b.thresholds) t(threshold)
         where greatest(s.usd / nullif(b.limit_usd, 0), s.tokens::numeric / nullif(b.limit_tokens, 0)) >= t.threshold
         order by 1, 2, 5
        on conflict on constraint budget_alerts_once do nothing;
    end if;
    return null;
end
$$;

-- Named to fire after request_logs_usage_insert (triggers fire in name order): the profile exists
-- and its lifetime counters include the batch. Writers lock user_profiles rows, then advisory locks,
-- each in sorted order; a reservation holds only its advisory lock and waits on no row: no deadlock.
create trigger request_logs_usage_settle
    after insert on public.request_logs
    referencing new table as new_rows
    for each statement execute function public.llmtally_settle_budgets();

-- ---------------------------------------------------------------------------------------------
-- Row-level security and grants: users read their own budgets, limits, alerts; only the server writes
-- ---------------------------------------------------------------------------------------------
alter table public.budgets             enable row level security;
alter table public.budget_reservations enable row level security;
alter table public.budget_alerts       enable row level security;
alter table public.rate_limits         enable row level security;
alter table public.rate_limit_log      enable row level security;

-- The default (user_profile_id NULL) applies to everyone, so everyone may read it.
create policy budgets_read_own on public.budgets
    for select to authenticated
    using (user_profile_id is null or user_profile_id = ((select auth.jwt()) ->> 'sub'));
create policy rate_limits_read_own on public.rate_limits
    for select to authenticated
    using (user_profile_id is null or user_profile_id = ((select auth.jwt()) ->> 'sub'));
create policy budget_reservations_read_own on public.budget_reservations
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
create policy budget_alerts_read_own on public.budget_alerts
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
-- rate_limit_log: no policy, server only.

revoke all on table public.budgets, public.budget_reservations, public.budget_alerts, public.rate_limits,
    public.rate_limit_log, public.user_budget_status
    from public, anon, authenticated;
revoke all on sequence public.budgets_id_seq, public.budget_alerts_id_seq, public.rate_limits_id_seq
    from public, anon, authenticated;
revoke all on function public.llmtally_budget_usage(text, timestamptz),
    public.llmtally_reserve(text, text, text, text, bigint, bigint, numeric, integer, timestamptz),
    public.llmtally_release(text), public.llmtally_settle_budgets()
    from public, anon, authenticated;

grant select on table public.budgets, public.budget_reservations, public.budget_alerts, public.rate_limits,
    public.user_budget_status
    to authenticated;
grant all on table public.budgets, public.budget_reservations, public.budget_alerts, public.rate_limits,
    public.rate_limit_log, public.user_budget_status
    to service_role;
grant usage on sequence public.budgets_id_seq, public.budget_alerts_id_seq, public.rate_limits_id_seq to service_role;
grant execute on function public.llmtally_budget_usage(text, timestamptz),
    public.llmtally_reserve(text, text, text, text, bigint, bigint, numeric, integer, timestamptz),
    public.llmtally_release(text)
    to service_role;
