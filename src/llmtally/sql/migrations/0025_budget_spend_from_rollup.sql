-- llmtally 0025: what a budget's period has spent, read from the daily rollup instead of summed from
-- every request_logs row of the period.
--
-- A reservation (llmtally_reserve, through llmtally_budget_usage), every ledger batch with budgets
-- (the settlement trigger's alerts) and the budget page (user_budget_status) summed the user's
-- request_logs rows of the period: one row per call, so a monthly budget cost more the more the user
-- called that month, under the per-user lock every reservation and settlement of that user waits for.
-- At 3,500 calls in the month a reservation took 3.5 ms against 0.3 ms on an empty month, and a key
-- used for 100,000 calls a month would have spent 100 ms in each.
--
-- usage_daily holds the same sums (cost and tokens per user, UTC day, model and provider), kept by the
-- ledger's triggers in the writing transaction, before the settlement trigger runs (triggers fire in
-- name order: request_logs_usage_insert, then request_logs_usage_settle; request_logs_usage_update,
-- then request_logs_usage_update_settle). public.llmtally_spent(user, starts, ends) sums the UTC days
-- wholly inside [starts, ends) from it (one row per model and day), and reads request_logs only for
-- the hours of a period that starts or ends inside a UTC day (a budget in another timezone): at most
-- one day at each end. The result is the same sum (the invariants of docs/schema.md): retention keeps
-- every row of a current period (`llmtally retention apply` refuses --rows-days below 32 while such
-- budgets exist), and deleting a user deletes their rollup rows with their calls.
--
-- Security invoker, like the view that calls it: read as a user, row-level security applies to
-- usage_daily and request_logs alike (their own rows and their teams').

create function public.llmtally_spent(p_user text, p_starts timestamptz, p_ends timestamptz)
    returns table (usd numeric, tokens bigint)
    language plpgsql stable
    rows 1
    set search_path = ''
as $$
declare
    -- [first_day, end_day): the UTC days wholly inside [p_starts, p_ends), maybe none
    first_day date := (p_starts at time zone 'UTC')::date
                      + case when (p_starts at time zone 'UTC')::time = time '00:00' then 0 else 1 end;
    end_day   date := greatest(first_day, (p_ends at time zone 'UTC')::date);
    first_at  timestamptz := first_day::timestamp at time zone 'UTC';
    end_at    timestamptz := end_day::timestamp at time zone 'UTC';
begin
    -- PL/pgSQL: the query is planned once per connection, not at every call as an SQL function's is
    -- (its planning took longer than its run).
    return query
    select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
      from (select u.cost, u.tokens
              from public.usage_daily u
             where u.user_id = p_user and u.day >= first_day and u.day < end_day
            union all
            -- the hours before the first whole day (or the whole period when it holds none)
            select l.total_cost, l.tokens_used::bigint
              from public.request_logs l
             where l.user_profile_id = p_user and l.created_at >= p_starts and l.created_at < least(p_ends, first_at)
            union all
            -- the hours after the last whole day
            select l.total_cost, l.tokens_used::bigint
              from public.request_logs l
             where l.user_profile_id = p_user and l.created_at >= greatest(p_starts, end_at)
               and l.created_at < p_ends) x(usd, tokens);
end
$$;
comment on function public.llmtally_spent(text, timestamptz, timestamptz) is
    'What a user (or team) spent in [starts, ends), a finite period: whole UTC days from usage_daily, the hours around them from request_logs.';
revoke all on function public.llmtally_spent(text, timestamptz, timestamptz) from public, anon, authenticated;
-- authenticated reads user_budget_status (security_invoker), which calls it: under row-level security.
grant execute on function public.llmtally_spent(text, timestamptz, timestamptz) to authenticated, service_role;

-- Both return one row: the planner is told so. Left at the default estimate of 1,000 rows each, the
-- budget query below (a budget x its period x its spend) was costed as millions of rows, over the
-- threshold at which PostgreSQL compiles a query with JIT (jit_above_cost): 20 ms of compiling per
-- reservation, for a query that runs in a fraction of a millisecond.
alter function public.llmtally_period_bounds(text, timestamptz, text) rows 1;

-- create or replace keeps the owners, comments and grants of 0006 and 0016.
-- PL/pgSQL now, for the same reason as llmtally_spent: planned once per connection. create or replace
-- cannot change a function's language, so it is dropped and made again, with its comment and grants.
drop function public.llmtally_budget_usage(text, timestamptz);
create function public.llmtally_budget_usage(p_user text, p_at timestamptz)
    returns table (budget_id bigint, owner text, period text, limit_usd numeric, limit_tokens bigint,
                   hard boolean, thresholds numeric[], timezone text, period_start timestamptz,
                   period_end timestamptz, spent_usd numeric, spent_tokens bigint,
                   reserved_usd numeric, reserved_tokens bigint)
    language plpgsql stable
    set search_path = ''
as $$
begin
    return query
    select b.id, b.user_profile_id, b.period, b.limit_usd, b.limit_tokens, b.hard, b.thresholds, b.timezone,
           nullif(per.starts, '-infinity'), nullif(per.ends, 'infinity'), s.usd, s.tokens, r.usd, r.tokens
      from (select distinct on (x.period) x.*
              from public.budgets x
             where x.user_profile_id = p_user or x.user_profile_id is null
             order by x.period, x.user_profile_id nulls last) b
     cross join lateral public.llmtally_period_bounds(b.period, p_at, b.timezone) per(starts, ends)
     cross join lateral (
            select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
              from (select sp.usd, sp.tokens
                      from public.llmtally_spent(p_user, per.starts, per.ends) sp
                     where b.period <> 'lifetime'
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
     order by b.period;
end
$$;
comment on function public.llmtally_budget_usage(text, timestamptz) is
    'The budgets in force for a user at a moment, with period bounds, spent (from the rollup and the ledger) and reserved.';
revoke all on function public.llmtally_budget_usage(text, timestamptz) from public, anon, authenticated;
grant execute on function public.llmtally_budget_usage(text, timestamptz) to service_role;

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
                    else (select sp.usd from public.llmtally_spent(p.user_id, per.starts, per.ends) sp) end,
               case when b.period = 'lifetime' then p.tokens_used
                    else (select sp.tokens from public.llmtally_spent(p.user_id, per.starts, per.ends) sp) end
    ) s(usd, tokens)
 cross join lateral (
        select coalesce(sum(rv.usd), 0), coalesce(sum(rv.tokens), 0)::bigint
          from public.budget_reservations rv
         where rv.user_id = p.user_id and rv.expires_at > now()
    ) r(usd, tokens);

-- The settlement trigger of 0016, its alerts reading what was spent from llmtally_spent().
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
        -- What llmtally_budget_usage computes (spent only), for every user of the batch in one statement.
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
                  from (select sp.usd, sp.tokens
                          from public.llmtally_spent(b.user_id, per.starts, per.ends) sp
                         where b.period <> 'lifetime'
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
