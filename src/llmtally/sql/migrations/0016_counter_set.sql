-- llmtally 0016: one definition of the counter set, and one of a budget's period.
--
-- THE COUNTER SET. Every call adds to the same additive measures in five places: the counters of
-- user_profiles and the rollups usage_daily, usage_monthly, usage_daily_totals and usage_monthly_users
-- (kept by the statement-level triggers of request_logs), and deleting a user merges their rollup
-- rows into the anonymous ones (llmtally.privacy). Until this migration each of those statements
-- spelled out every measure, about twenty copies across 0001, 0004, 0008 and 0009.
--
-- The strategy is generated SQL from one list:
--
--   public.llmtally_counter_set()     the list: one row per measure, with its rollup column, its
--                                     user_profiles column (none for latency_ms_sum) and the aggregate
--                                     that computes it from request_logs rows;
--   public.llmtally_define_counters() writes, from that list, the trigger functions
--                                     llmtally_apply_usage() and llmtally_apply_usage_monthly_users()
--                                     and llmtally_merge_into_anonymous(user_id), with every measure
--                                     spelled out in static SQL.
--
-- The functions it writes are plain SQL statements, planned like the hand-written ones they replace
-- (a shared function or a composite type called per row would cost each batch a function call per row
-- and per rollup); schema.sql shows them expanded. To add a measure: a migration adds the column to
-- the tables, replaces llmtally_counter_set() with the longer list and runs
-- `select public.llmtally_define_counters();`. Nothing else names the measures.
--
-- THE PERIOD OF A BUDGET. public.llmtally_period_bounds(period, at, timezone) is where a period
-- starts and ends (calendar-aligned in the budget's timezone: daily from local midnight, weekly from
-- Monday, monthly from the 1st; lifetime from -infinity to infinity). llmtally_budget_usage(),
-- the view user_budget_status and the settlement trigger's alerts (llmtally_settle_budgets()) each
-- computed it themselves (0006, 0010); they now call it.
--
-- NO FIELD HIDDEN IN METADATA. 0007 had the writers pass a call's truncated-content flag inside
-- metadata (key _llmtally_content), moved into request_logs.content_truncated / content_original_bytes
-- by a BEFORE INSERT row trigger, so that the batch type and the insert function could stay as they were.
-- The flag is now two fields of public.llmtally_event, which llmtally_insert_events() writes into those
-- columns; the trigger and its function are dropped. Stored rows need no change: the trigger removed
-- the key from every row it let in (and spool records carry the flag in fields of their own). A writer
-- of an earlier version, still running through an upgrade, may still send the key: the insert reads it
-- and removes it from metadata, as the trigger did.

-- ---------------------------------------------------------------------------------------------
-- The counter set
-- ---------------------------------------------------------------------------------------------
create function public.llmtally_counter_set()
    returns table (ord integer, measure text, profile_column text, of_rows text)
    language sql immutable parallel safe
    set search_path = ''
as $$
    values
        ( 1, 'requests',              'request_count',         'count(*)'),
        ( 2, 'successes',             'success_count',         'count(*) filter (where status = ''success'')'),
        ( 3, 'failures',              'failure_count',         'count(*) filter (where status = ''failure'')'),
        ( 4, 'cancelled',             'cancelled_count',       'count(*) filter (where status = ''cancelled'')'),
        ( 5, 'prompt_tokens',         'prompt_tokens',         'sum(prompt_tokens)'),
        ( 6, 'completion_tokens',     'completion_tokens',     'sum(completion_tokens)'),
        ( 7, 'tokens',                'tokens_used',           'sum(tokens_used)'),
        ( 8, 'cost',                  'total_cost',            'coalesce(sum(total_cost), 0)'),
        ( 9, 'unpriced_requests',     'unpriced_count',        'count(*) filter (where cost_status = ''unpriced'')'),
        (10, 'latency_ms_sum',        null,                    'coalesce(sum(latency_ms), 0)'),
        (11, 'attempts',              'attempt_count',         'sum(attempt_count)'),
        (12, 'failed_attempts',       'failed_attempt_count',  'sum(failed_attempts)'),
        (13, 'cache_hits',            'cache_hit_count',       'count(*) filter (where cache_hit)'),
        (14, 'estimated_requests',    'estimated_count',       'count(*) filter (where usage_source = ''estimated'')'),
        (15, 'cached_tokens',         'cached_tokens',         'sum(cached_tokens)'),
        (16, 'cache_creation_tokens', 'cache_creation_tokens', 'sum(cache_creation_tokens)'),
        (17, 'reasoning_tokens',      'reasoning_tokens',      'sum(reasoning_tokens)'),
        (18, 'audio_tokens',          'audio_tokens',          'sum(audio_tokens)'),
        (19, 'saved_cost',            'saved_cost',            'coalesce(sum(saved_cost), 0)')
$$;
comment on function public.llmtally_counter_set() is
    'The additive measures of the counters and rollups: rollup column, user_profiles column, aggregate over request_logs rows.';

create function public.llmtally_define_counters() returns void
    language plpgsql
    set search_path = ''
as $define$
declare
    sep         constant text := E',\n        ';
    -- over request_logs rows, named as the rollup columns: "count(*) as requests, ..."
    of_rows     text;
    -- the rollup columns: "requests, successes, ..."
    cols        text;
    -- re-aggregated: "sum(requests) as requests, ..." and "sum(requests), ..."
    sums_as     text;
    sums        text;
    -- applied to a rollup row u: "requests = u.requests - d.requests, ..." and "... + excluded.requests"
    minus_u     text;
    plus_u      text;
    -- the user_profiles counters: their columns, the aggregates in that order, and applied to row p
    p_cols      text;
    p_of_rows   text;
    p_minus     text;
    p_plus      text;
begin
    select string_agg(format('%s as %I', c.of_rows, c.measure), sep order by c.ord),
           string_agg(format('%I', c.measure), ', ' order by c.ord),
           string_agg(format('sum(%1$I) as %1$I', c.measure), sep order by c.ord),
           string_agg(format('sum(%I)', c.measure), ', ' order by c.ord),
           string_agg(format('%1$I = u.%1$I - d.%1$I', c.measure), sep order by c.ord),
           string_agg(format('%1$I = u.%1$I + excluded.%1$I', c.measure), sep order by c.ord),
           string_agg(format('%I', c.profile_column), ', ' order by c.ord)
               filter (where c.profile_column is not null),
           string_agg(c.of_rows, sep order by c.ord) filter (where c.profile_column is not null),
           string_agg(format('%1$I = p.%1$I - d.%2$I', c.profile_column, c.measure), sep order by c.ord)
               filter (where c.profile_column is not null),
           string_agg(format('%1$I = p.%1$I + excluded.%1$I', c.profile_column), sep order by c.ord)
               filter (where c.profile_column is not null)
      into of_rows, cols, sums_as, sums, minus_u, plus_u, p_cols, p_of_rows, p_minus, p_plus
      from public.llmtally_counter_set() c;

    -- The counters of user_profiles and the rollups by day x model x provider (usage_daily, usage_monthly,
    -- usage_daily_totals). Rows leaving (old_rows, on UPDATE) are subtracted where they counted, rows
    -- arriving (new_rows) added; every statement visits its keys in sorted order, so concurrent
    -- writers lock rows in the same order.
    execute format($fn$
create or replace function public.llmtally_apply_usage() returns trigger
    language plpgsql
    set search_path = ''
as $body$
begin
    if tg_op = 'UPDATE' then
        update public.user_profiles p set
        %1$s
          from (select user_profile_id,
        %2$s
                  from old_rows
                 where user_profile_id is not null
                 group by user_profile_id
                 order by user_profile_id) d
         where p.user_id = d.user_profile_id;

        with agg as materialized (
            select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
        %2$s
              from old_rows
             group by 1, 2, 3, 4
        ), daily as (
            update public.usage_daily u set
        %3$s
              from (select * from agg order by user_id, day, model, provider) d
             where u.user_id is not distinct from d.user_id
               and u.day = d.day and u.model = d.model and u.provider = d.provider
        ), monthly as (
            update public.usage_monthly u set
        %3$s
              from (select user_id, date_trunc('month', day)::date as month, model, provider,
        %4$s
                      from agg group by 1, 2, 3, 4 order by 1, 2, 3, 4) d
             where u.user_id is not distinct from d.user_id
               and u.month = d.month and u.model = d.model and u.provider = d.provider
        )
        update public.usage_daily_totals u set
        %3$s
          from (select day, model, provider,
        %4$s
                  from agg group by 1, 2, 3 order by 1, 2, 3) d
         where u.day = d.day and u.model = d.model and u.provider = d.provider;
    end if;

    insert into public.user_profiles as p (user_id, %5$s, first_request_at, last_request_at)
    select user_profile_id,
        %6$s,
           min(created_at), max(created_at)
      from new_rows
     where user_profile_id is not null
     group by user_profile_id
     order by user_profile_id
    on conflict (user_id) do update set
        %7$s,
        first_request_at = least(p.first_request_at, excluded.first_request_at),
        last_request_at = greatest(p.last_request_at, excluded.last_request_at);

    with agg as materialized (
        select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
        %2$s
          from new_rows
         group by 1, 2, 3, 4
    ), daily as (
        insert into public.usage_daily as u (user_id, day, model, provider, %8$s)
        select user_id, day, model, provider, %8$s
          from agg
         order by user_id, day, model, provider
        on conflict on constraint usage_daily_key do update set
        %9$s
    ), monthly as (
        insert into public.usage_monthly as u (user_id, month, model, provider, %8$s)
        select user_id, date_trunc('month', day)::date, model, provider, %10$s
          from agg
         group by 1, 2, 3, 4
         order by 1, 2, 3, 4
        on conflict on constraint usage_monthly_key do update set
        %9$s
    )
    insert into public.usage_daily_totals as u (day, model, provider, %8$s)
    select day, model, provider, %10$s
      from agg
     group by 1, 2, 3
     order by 1, 2, 3
    on conflict (day, model, provider) do update set
        %9$s;
    return null;
end
$body$
$fn$, p_minus, of_rows, minus_u, sums_as, p_cols, p_of_rows, p_plus, cols, plus_u, sums);

    -- The rollup by user x UTC month (0008), kept by its own triggers.
    execute format($fn$
create or replace function public.llmtally_apply_usage_monthly_users() returns trigger
    language plpgsql
    set search_path = ''
as $body$
begin
    if tg_op = 'UPDATE' then
        update public.usage_monthly_users u set
        %1$s
          from (select user_profile_id as user_id,
                       date_trunc('month', created_at at time zone 'UTC')::date as month,
        %2$s
                  from old_rows
                 group by 1, 2
                 order by 1, 2) d
         where u.user_id is not distinct from d.user_id and u.month = d.month;
    end if;

    insert into public.usage_monthly_users as u (user_id, month, %3$s)
    select user_profile_id, date_trunc('month', created_at at time zone 'UTC')::date,
        %2$s
      from new_rows
     group by 1, 2
     order by 1, 2
    on conflict on constraint usage_monthly_users_key do update set
        %4$s;
    return null;
end
$body$
$fn$, minus_u, of_rows, cols, plus_u);

    -- Deleting a user (llmtally.privacy): their rollup rows left from calls that retention already
    -- removed are deleted and added to the anonymous rows (user_id null) of the same key.
    -- usage_daily_totals has no user and is unchanged.
    execute format($fn$
create or replace function public.llmtally_merge_into_anonymous(p_user text) returns void
    language plpgsql
    set search_path = ''
as $body$
begin
    with gone as (delete from public.usage_daily where user_id = p_user returning *)
    insert into public.usage_daily as u (user_id, day, model, provider, %1$s)
    select null, day, model, provider, %1$s
      from gone where requests > 0
    on conflict on constraint usage_daily_key do update set
        %2$s;

    with gone as (delete from public.usage_monthly where user_id = p_user returning *)
    insert into public.usage_monthly as u (user_id, month, model, provider, %1$s)
    select null, month, model, provider, %1$s
      from gone where requests > 0
    on conflict on constraint usage_monthly_key do update set
        %2$s;

    with gone as (delete from public.usage_monthly_users where user_id = p_user returning *)
    insert into public.usage_monthly_users as u (user_id, month, %1$s)
    select null, month, %1$s
      from gone where requests > 0
    on conflict on constraint usage_monthly_users_key do update set
        %2$s;
end
$body$
$fn$, cols, plus_u);
end
$define$;
comment on function public.llmtally_define_counters() is
    'Writes the counter triggers and the anonymous merge from llmtally_counter_set(); run it after changing the set.';

select public.llmtally_define_counters();

comment on function public.llmtally_merge_into_anonymous(text) is
    'A deleted user''s remaining rollup rows, merged into the anonymous rows of the same keys.';

revoke all on function public.llmtally_counter_set(), public.llmtally_define_counters(),
    public.llmtally_merge_into_anonymous(text)
    from public, anon, authenticated;
grant execute on function public.llmtally_merge_into_anonymous(text) to service_role;
-- create or replace keeps the owner, comments and grants of llmtally_apply_usage() (0001) and
-- llmtally_apply_usage_monthly_users() (0008), and their triggers.

-- ---------------------------------------------------------------------------------------------
-- The period of a budget
-- ---------------------------------------------------------------------------------------------
create function public.llmtally_period_bounds(p_period text, p_at timestamptz, p_timezone text)
    returns table (starts timestamptz, ends timestamptz)
    language sql stable parallel safe
    set search_path = ''
as $$
    select case when unit.name is null then '-infinity'::timestamptz
                else pg_catalog.date_trunc(unit.name, p_at, p_timezone) end,
           case when unit.name is null then 'infinity'::timestamptz
                else (pg_catalog.date_trunc(unit.name, p_at at time zone p_timezone)
                      + ('1 ' || unit.name)::interval) at time zone p_timezone end
      from (select case p_period when 'daily' then 'day' when 'weekly' then 'week'
                                 when 'monthly' then 'month' end) unit(name)
$$;
comment on function public.llmtally_period_bounds(text, timestamptz, text) is
    'Where the period of a budget holding the moment starts and ends, in the budget''s timezone (lifetime: -infinity, infinity).';
revoke all on function public.llmtally_period_bounds(text, timestamptz, text) from public, anon, authenticated;
-- authenticated reads user_budget_status (security_invoker), which calls it.
grant execute on function public.llmtally_period_bounds(text, timestamptz, text) to authenticated, service_role;

create or replace function public.llmtally_budget_usage(p_user text, p_at timestamptz)
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
     cross join lateral public.llmtally_period_bounds(b.period, p_at, b.timezone) per(starts, ends)
     cross join lateral (
            select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
              from (select l.total_cost as usd, l.tokens_used::bigint as tokens
                      from public.request_logs l
                     where b.period <> 'lifetime' and l.user_profile_id = p_user
                       and l.created_at >= per.starts and l.created_at < per.ends
                    union all
                    select p.total_cost, p.tokens_used
                      from public.user_profiles p
                     where b.period = 'lifetime' and p.user_id = p_user) x
        ) s(usd, tokens)
     cross join lateral (
            select coalesce(sum(rv.usd), 0)::numeric, coalesce(sum(rv.tokens), 0)::bigint
              from public.budget_reservations rv
             where rv.user_id = p_user and rv.expires_at > p_at
        ) r(usd, tokens)
     order by b.period
$$;

create or replace view public.user_budget_status with (security_invoker = true) as
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
 cross join lateral public.llmtally_period_bounds(b.period, now(), b.timezone) per(starts, ends)
 cross join lateral (
        select case when b.period = 'lifetime' then p.total_cost
                    else (select coalesce(sum(l.total_cost), 0) from public.request_logs l
                           where l.user_profile_id = p.user_id
                             and l.created_at >= per.starts and l.created_at < per.ends) end,
               case when b.period = 'lifetime' then p.tokens_used
                    else (select coalesce(sum(l.tokens_used), 0) from public.request_logs l
                           where l.user_profile_id = p.user_id
                             and l.created_at >= per.starts and l.created_at < per.ends) end
    ) s(usd, tokens)
 cross join lateral (
        select coalesce(sum(rv.usd), 0), coalesce(sum(rv.tokens), 0)::bigint
          from public.budget_reservations rv
         where rv.user_id = p.user_id and rv.expires_at > now()
    ) r(usd, tokens);

-- The settlement trigger of 0010, its alerts reading the period from llmtally_period_bounds().
create or replace function public.llmtally_settle_budgets() returns trigger
    language plpgsql security definer
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
                       join new_rows n on rv.litellm_call_id in (n.litellm_call_id, n.call_key)) x
              order by 1 loop
        perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('llmtally.limits:' || u, 0));
    end loop;

    -- Only a billed outcome settles: a failed attempt may be retried or fall back under the same call,
    -- so its reservation keeps the headroom until the call's success (or llmtally_settle_failed).
    delete from public.budget_reservations rv
     using new_rows n where rv.litellm_call_id in (n.litellm_call_id, n.call_key) and n.status <> 'failure';
    update public.rate_limit_log l set tokens = n.tokens_used
      from new_rows n where l.litellm_call_id in (n.litellm_call_id, n.call_key);

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
         cross join lateral public.llmtally_period_bounds(b.period, pg_catalog.now(), b.timezone) per(starts, ends)
         cross join lateral (
                select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
                  from (select l.total_cost as usd, l.tokens_used::bigint as tokens
                          from public.request_logs l
                         where b.period <> 'lifetime' and l.user_profile_id = b.user_id
                           and l.created_at >= per.starts and l.created_at < per.ends
                        union all
                        select p.total_cost, p.tokens_used
                          from public.user_profiles p
                         where b.period = 'lifetime' and p.user_id = b.user_id) x
            ) s(usd, tokens)
         cross join lateral pg_catalog.unnest(b.thresholds) t(threshold)
         where greatest(s.usd / nullif(b.limit_usd, 0), s.tokens::numeric / nullif(b.limit_tokens, 0)) >= t.threshold
         order by 1, 2, 5
        on conflict on constraint budget_alerts_once do nothing;
    end if;
    return null;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The truncated-content flag as fields of the batch type, not a key in metadata
-- ---------------------------------------------------------------------------------------------
alter type public.llmtally_event
    add attribute content_truncated boolean,
    add attribute content_original_bytes bigint;

drop trigger request_logs_content_flag on public.request_logs;
drop function public.llmtally_content_flag();

-- The insert of 0010, writing the flag from the event's fields (or, from an earlier writer, its
-- metadata key). create or replace keeps the grants of 0002 (service_role only).
create or replace function public.llmtally_insert_events(events public.llmtally_event[]) returns integer
    language plpgsql
    set search_path = ''
as $$
declare
    added_count integer;
begin
    -- A call's row may move between rollup keys (its failure's day and model, its success's): the
    -- UPDATE triggers then lock rollup rows in another order than the INSERT triggers. Writers first
    -- take one lock per user of the batch (anonymous included), in sorted order, so they cannot deadlock.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('llmtally.calls:' || u.user_id, 0))
       from (select distinct coalesce(nullif(s.user_profile_id, ''), by_session.user_id, by_end_user.user_id, '')
                        as user_id
               from pg_catalog.unnest(events) s
               left join public.sessions by_session
                      on by_session.session_id = s.session_id and nullif(s.user_profile_id, '') is null
               left join public.sessions by_end_user
                      on by_end_user.session_id = s.end_user and nullif(s.user_profile_id, '') is null
              order by 1) u;

    with resolved as (
        select distinct on (k.attempt_key)
               s.seq, k.call_key, k.attempt_key,
               coalesce(nullif(s.user_profile_id, ''), by_session.user_id, by_end_user.user_id) as user_profile_id,
               s.end_user, s.session_id, s.litellm_call_id, s.trace_id, s.model, coalesce(s.provider, 'unknown') as provider,
               s.model_group, s.model_id, s.api_base,
               coalesce(s.prompt_tokens, 0) as prompt_tokens, coalesce(s.completion_tokens, 0) as completion_tokens,
               coalesce(s.tokens_used, 0) as tokens_used, coalesce(s.cached_tokens, 0) as cached_tokens,
               coalesce(s.cache_creation_tokens, 0) as cache_creation_tokens,
               coalesce(s.reasoning_tokens, 0) as reasoning_tokens, coalesce(s.audio_tokens, 0) as audio_tokens,
               case when price.model is null or coalesce(s.cache_hit, false) then s.total_cost
                    else public.llmtally_custom_cost(price.price_row, coalesce(s.prompt_tokens, 0),
                                                     coalesce(s.completion_tokens, 0), coalesce(s.cached_tokens, 0),
                                                     coalesce(s.cache_creation_tokens, 0)) end as total_cost,
               case when price.model is not null and not coalesce(s.cache_hit, false) then 'custom'
                    else coalesce(s.cost_status, case when s.total_cost is null then 'unpriced' else 'priced' end)
               end as cost_status,
               s.ordinality as ord, s.status, s.error, s.error_type, s.latency_ms,
               coalesce(s.stream, false) as stream, coalesce(s.metadata, '{}'::jsonb) as metadata,
               k.created_at, coalesce(s.cache_hit, false) as cache_hit, s.saved_cost,
               coalesce(s.usage_source, 'provider') as usage_source,
               public.llmtally_status_rank(s.status) as rank
          from pg_catalog.unnest(events) with ordinality s
         cross join lateral (
                select coalesce(nullif(s.call_key, ''), s.litellm_call_id) as call_key,
                       coalesce(s.created_at, pg_catalog.now()) as created_at) c
         cross join lateral (
                select c.call_key,
                       coalesce(nullif(s.attempt_key, ''),
                                s.litellm_call_id || ':' || coalesce(s.status, '') || ':'
                                || extract(epoch from c.created_at)::text)
                           as attempt_key,
                       c.created_at) k
          left join public.sessions by_session
                 on by_session.session_id = s.session_id and nullif(s.user_profile_id, '') is null
          left join public.sessions by_end_user
                 on by_end_user.session_id = s.end_user and nullif(s.user_profile_id, '') is null
          left join lateral (
                select mp.model, mp as price_row
                  from public.model_prices mp
                 where mp.model in (s.model, coalesce(s.provider, 'unknown') || '/' || s.model)
                 order by mp.model = s.model desc
                 limit 1) price on true
         order by k.attempt_key, s.seq
    ), added as (
        insert into public.request_attempts (attempt_key, call_key, litellm_call_id, trace_id, user_profile_id,
            end_user, model, provider, model_group, model_id, api_base, status, error_type, error, prompt_tokens,
            completion_tokens, tokens_used, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens,
            total_cost, cost_status, cache_hit, saved_cost, usage_source, latency_ms, stream, created_at)
        select attempt_key, call_key, litellm_call_id, trace_id, user_profile_id, end_user, model, provider,
               model_group, model_id, api_base, status, error_type, error, prompt_tokens, completion_tokens,
               tokens_used, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, total_cost,
               cost_status, cache_hit, saved_cost, usage_source, latency_ms, stream, created_at
          from resolved
         order by attempt_key
        on conflict (attempt_key) do nothing
        returning attempt_key
    ), ranked as (
        select r.*,
               max(r.rank) over per_call as best_rank,
               count(*) over per_call as n_attempts,
               count(*) filter (where r.status = 'failure') over per_call as n_failed,
               min(r.created_at) over per_call as first_at
          from resolved r
          join added a on a.attempt_key = r.attempt_key
        window per_call as (partition by r.call_key)
    ), outcome as (
        select r.*,
               sum(r.prompt_tokens) over best as sum_prompt,
               sum(r.completion_tokens) over best as sum_completion,
               sum(r.tokens_used) over best as sum_tokens,
               sum(r.cached_tokens) over best as sum_cached,
               sum(r.cache_creation_tokens) over best as sum_cache_creation,
               sum(r.reasoning_tokens) over best as sum_reasoning,
               sum(r.audio_tokens) over best as sum_audio,
               case when bool_and(r.total_cost is not null) over best then sum(r.total_cost) over best end as sum_cost,
               sum(r.saved_cost) over best as sum_saved,
               bool_and(r.cache_hit) over best as all_cache_hits,
               bool_or(r.usage_source = 'estimated') over best as any_estimated,
               max(r.latency_ms) over best as max_latency,
               row_number() over (partition by r.call_key order by r.created_at desc, r.seq desc) as pick
          from ranked r
         where r.rank = r.best_rank
        window best as (partition by r.call_key)
    ), logged as (
        insert into public.request_logs as l (call_key, user_profile_id, end_user, session_id, litellm_call_id,
            trace_id, model, provider, model_group, prompt_tokens, completion_tokens, tokens_used, cached_tokens,
            cache_creation_tokens, reasoning_tokens, audio_tokens, total_cost, cost_status, cache_hit, saved_cost,
            usage_source, messages, response, status, error, error_type, latency_ms, stream, metadata, created_at,
            attempt_count, failed_attempts, content_truncated, content_original_bytes)
        select o.call_key, o.user_profile_id, o.end_user, o.session_id, o.litellm_call_id, o.trace_id, o.model,
               o.provider, o.model_group, o.sum_prompt, o.sum_completion, o.sum_tokens, o.sum_cached,
               o.sum_cache_creation, o.sum_reasoning, o.sum_audio, o.sum_cost,
               case when o.sum_cost is null then 'unpriced' else o.cost_status end,
               o.all_cache_hits, o.sum_saved,
               case when o.any_estimated then 'estimated' else 'provider' end,
               c.messages, c.response, o.status, o.error, o.error_type, o.max_latency, o.stream,
               case when legacy.flag is null then o.metadata else o.metadata - '_llmtally_content' end,
               o.first_at, o.n_attempts, o.n_failed,
               coalesce(c.content_truncated, (legacy.flag ->> 'truncated')::boolean, false),
               case when c.content_truncated then greatest(0, c.content_original_bytes)
                    when c.content_truncated is null and legacy.flag is not null
                    then greatest(0, (legacy.flag ->> 'original_bytes')::bigint) end
          from outcome o
          join pg_catalog.unnest(events) with ordinality c on c.ordinality = o.ord
          -- a writer of an earlier version passes the flag in metadata (0007): read here and removed
         cross join lateral (
                select case when pg_catalog.jsonb_typeof(o.metadata) = 'object'
                            then o.metadata -> '_llmtally_content' end as flag) legacy
         where o.pick = 1
         order by o.call_key
        on conflict (call_key) do update set
            -- better: the new attempts' outcome replaces the row's; equal: usage adds up; worse: kept
            user_profile_id       = coalesce(l.user_profile_id, excluded.user_profile_id),
            end_user              = coalesce(l.end_user, excluded.end_user),
            session_id            = coalesce(l.session_id, excluded.session_id),
            trace_id              = coalesce(l.trace_id, excluded.trace_id),
            litellm_call_id       = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.litellm_call_id else l.litellm_call_id end,
            model                 = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.model else l.model end,
            provider              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.provider else l.provider end,
            model_group           = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.model_group else coalesce(l.model_group, excluded.model_group) end,
            prompt_tokens         = public.llmtally_combine(l.status, excluded.status, l.prompt_tokens,
                                                            excluded.prompt_tokens),
            completion_tokens     = public.llmtally_combine(l.status, excluded.status, l.completion_tokens,
                                                            excluded.completion_tokens),
            tokens_used           = public.llmtally_combine(l.status, excluded.status, l.tokens_used,
                                                            excluded.tokens_used),
            cached_tokens         = public.llmtally_combine(l.status, excluded.status, l.cached_tokens,
                                                            excluded.cached_tokens),
            cache_creation_tokens = public.llmtally_combine(l.status, excluded.status, l.cache_creation_tokens,
                                                            excluded.cache_creation_tokens),
            reasoning_tokens      = public.llmtally_combine(l.status, excluded.status, l.reasoning_tokens,
                                                            excluded.reasoning_tokens),
            audio_tokens          = public.llmtally_combine(l.status, excluded.status, l.audio_tokens,
                                                            excluded.audio_tokens),
            total_cost            = public.llmtally_combine(l.status, excluded.status, l.total_cost,
                                                            excluded.total_cost),
            cost_status           = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.cost_status
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.cost_status
                                         when l.total_cost is null or excluded.total_cost is null then 'unpriced'
                                         else l.cost_status end,
            cache_hit             = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.cache_hit
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.cache_hit
                                         else l.cache_hit and excluded.cache_hit end,
            saved_cost            = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.saved_cost
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.saved_cost
                                         when l.saved_cost is null then excluded.saved_cost
                                         else l.saved_cost + coalesce(excluded.saved_cost, 0) end,
            usage_source          = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.usage_source
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.usage_source
                                         when 'estimated' in (l.usage_source, excluded.usage_source) then 'estimated'
                                         else 'provider' end,
            messages              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then coalesce(excluded.messages, l.messages)
                                         else coalesce(l.messages, excluded.messages) end,
            response              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then coalesce(excluded.response, l.response)
                                         else coalesce(l.response, excluded.response) end,
            status                = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.status else l.status end,
            error                 = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.error else l.error end,
            error_type            = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.error_type else l.error_type end,
            latency_ms            = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.latency_ms
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.latency_ms
                                         else greatest(l.latency_ms, excluded.latency_ms) end,
            stream                = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.stream else l.stream end,
            metadata              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.metadata else l.metadata end,
            content_truncated     = l.content_truncated or excluded.content_truncated,
            content_original_bytes = greatest(l.content_original_bytes, excluded.content_original_bytes),
            created_at            = least(l.created_at, excluded.created_at),
            attempt_count         = l.attempt_count + excluded.attempt_count,
            failed_attempts       = l.failed_attempts + excluded.failed_attempts
        returning 1
    )
    select count(*) into added_count from added;
    return added_count;
end
$$;
