-- Costs, prices and timestamps are finite. PostgreSQL's numeric holds NaN and ±Infinity (NaN passes
-- `x >= 0`: it sorts above every number) and timestamptz holds ±infinity; one such value in a usage row
-- made a user's counters NaN for good. This migration repairs what a database already took, then adds a
-- check `<table>_<column>_finite` on every numeric, numeric[] and timestamptz column of the tables in
-- public and chat, and makes llmtally_ingest name the field it refuses.
--
-- The repair, for a database that already holds such values:
--   * a usage row (request_logs) is copied whole into the quarantine first, then a non-finite cost becomes
--     NULL ('unpriced', as for any call without a price), a non-finite saved cost NULL and an infinite
--     time the time of this migration. The counter triggers move the row's counts; the costs the counters
--     and rollups summed as NaN are summed again from the rows, so counters still equal the rows.
--   * attempts (request_attempts) are repaired the same way, without a copy (their call is copied).
--   * elsewhere a nullable value becomes NULL, an infinite time the time of this migration, a budget's
--     threshold list keeps its finite thresholds, and a row whose required number is not finite (a price,
--     a reservation, an alert, a budget whose only limit is infinite) is deleted: it cannot be used.
-- Each repair raises a NOTICE saying what it changed.

create temporary table llmtally_nonfinite_logs on commit drop as
select id, user_profile_id,
       case when total_cost is not null and not (total_cost > '-Infinity' and total_cost < 'Infinity')
            then 'total_cost' when saved_cost is not null and not (saved_cost > '-Infinity' and saved_cost < 'Infinity')
            then 'saved_cost' else 'created_at' end as field
  from public.request_logs
 where (total_cost is not null and not (total_cost > '-Infinity' and total_cost < 'Infinity'))
    or (saved_cost is not null and not (saved_cost > '-Infinity' and saved_cost < 'Infinity'))
    or not isfinite(created_at);

insert into public.quarantine (litellm_call_id, reason, raw_event, raw_bytes)
select l.litellm_call_id,
       'migration 0013: the stored row had a non-finite ' || b.field || '; the row was kept with it repaired',
       to_jsonb(l)::text, octet_length(to_jsonb(l)::text)
  from public.request_logs l join llmtally_nonfinite_logs b on b.id = l.id;

update public.request_logs l set
    total_cost  = case when l.total_cost > '-Infinity' and l.total_cost < 'Infinity' then l.total_cost end,
    cost_status = case when l.total_cost > '-Infinity' and l.total_cost < 'Infinity' then l.cost_status
                       else 'unpriced' end,
    saved_cost  = case when l.saved_cost > '-Infinity' and l.saved_cost < 'Infinity' then l.saved_cost end,
    created_at  = case when isfinite(l.created_at) then l.created_at else now() end
  from llmtally_nonfinite_logs b
 where b.id = l.id;

update public.request_attempts a set
    total_cost  = case when a.total_cost > '-Infinity' and a.total_cost < 'Infinity' then a.total_cost end,
    cost_status = case when a.total_cost is null or (a.total_cost > '-Infinity' and a.total_cost < 'Infinity')
                       then a.cost_status else 'unpriced' end,
    saved_cost  = case when a.saved_cost > '-Infinity' and a.saved_cost < 'Infinity' then a.saved_cost end,
    created_at  = case when isfinite(a.created_at) then a.created_at else now() end
 where (a.total_cost is not null and not (a.total_cost > '-Infinity' and a.total_cost < 'Infinity'))
    or (a.saved_cost is not null and not (a.saved_cost > '-Infinity' and a.saved_cost < 'Infinity'))
    or not isfinite(a.created_at);

-- The sums the counters hold as NaN or infinity, again from the rows (rows moved off an infinite day
-- leave rollup rows with nothing in them).
delete from public.usage_daily where not isfinite(day) and requests = 0;
delete from public.usage_daily_totals where not isfinite(day) and requests = 0;
delete from public.usage_monthly where not isfinite(month) and requests = 0;
delete from public.usage_monthly_users where not isfinite(month) and requests = 0;

update public.usage_daily u set
    cost       = s.cost,
    saved_cost = s.saved_cost
  from (select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
               coalesce(sum(total_cost), 0) as cost, coalesce(sum(saved_cost), 0) as saved_cost
          from public.request_logs group by 1, 2, 3, 4) s
 where u.user_id is not distinct from s.user_id and u.day = s.day and u.model = s.model
   and u.provider = s.provider
   and not (u.cost > '-Infinity' and u.cost < 'Infinity' and u.saved_cost > '-Infinity'
            and u.saved_cost < 'Infinity');

update public.usage_daily_totals t set cost = s.cost, saved_cost = s.saved_cost
  from (select day, model, provider, sum(cost) as cost, sum(saved_cost) as saved_cost
          from public.usage_daily group by 1, 2, 3) s
 where t.day = s.day and t.model = s.model and t.provider = s.provider
   and not (t.cost > '-Infinity' and t.cost < 'Infinity' and t.saved_cost > '-Infinity'
            and t.saved_cost < 'Infinity');

update public.usage_monthly m set cost = s.cost, saved_cost = s.saved_cost
  from (select user_id, date_trunc('month', day)::date as month, model, provider,
               sum(cost) as cost, sum(saved_cost) as saved_cost
          from public.usage_daily group by 1, 2, 3, 4) s
 where m.user_id is not distinct from s.user_id and m.month = s.month and m.model = s.model
   and m.provider = s.provider
   and not (m.cost > '-Infinity' and m.cost < 'Infinity' and m.saved_cost > '-Infinity'
            and m.saved_cost < 'Infinity');

update public.usage_monthly_users m set cost = s.cost, saved_cost = s.saved_cost
  from (select user_id, date_trunc('month', day)::date as month, sum(cost) as cost,
               sum(saved_cost) as saved_cost
          from public.usage_daily group by 1, 2) s
 where m.user_id is not distinct from s.user_id and m.month = s.month
   and not (m.cost > '-Infinity' and m.cost < 'Infinity' and m.saved_cost > '-Infinity'
            and m.saved_cost < 'Infinity');

update public.user_profiles p set
    total_cost       = coalesce((select sum(l.total_cost) from public.request_logs l where l.user_profile_id = p.user_id), 0),
    saved_cost       = coalesce((select sum(l.saved_cost) from public.request_logs l where l.user_profile_id = p.user_id), 0),
    first_request_at = case when isfinite(p.first_request_at) then p.first_request_at else
                       (select min(l.created_at) from public.request_logs l where l.user_profile_id = p.user_id) end,
    last_request_at  = case when isfinite(p.last_request_at) then p.last_request_at else
                       (select max(l.created_at) from public.request_logs l where l.user_profile_id = p.user_id) end
 where not (p.total_cost > '-Infinity' and p.total_cost < 'Infinity' and p.saved_cost > '-Infinity'
            and p.saved_cost < 'Infinity')
    or not isfinite(p.first_request_at) or not isfinite(p.last_request_at);

update public.budgets b set
    thresholds = coalesce((select array_agg(t order by t) from unnest(b.thresholds) t
                            where t > '-Infinity' and t < 'Infinity'), '{1.0}')
 where exists (select from unnest(b.thresholds) t where not (t > '-Infinity' and t < 'Infinity'));

do $$
declare
    col record;
    finite text;
    changed bigint;
    n_logs bigint := (select count(*) from llmtally_nonfinite_logs);
begin
    if n_logs > 0 then
        raise notice 'llmtally: % usage rows held a non-finite cost or time: repaired (cost unpriced, time now), originals copied to the quarantine', n_logs;
    end if;
    for col in
        select c.relname as tab, n.nspname as sch, a.attname as name, a.attnotnull as not_null,
               t.typname as type
          from pg_catalog.pg_attribute a
          join pg_catalog.pg_class c on c.oid = a.attrelid
          join pg_catalog.pg_namespace n on n.oid = c.relnamespace
          join pg_catalog.pg_type t on t.oid = a.atttypid
         where n.nspname in ('public', 'chat') and c.relkind in ('r', 'p') and a.attnum > 0
           and not a.attisdropped and t.typname in ('numeric', '_numeric', 'timestamptz')
           and c.relpersistence = 'p'
         order by 1, 2, 3
    loop
        finite := case col.type
            when 'numeric' then format('%I > ''-Infinity'' and %I < ''Infinity''', col.name, col.name)
            when '_numeric' then format('''-Infinity'' < all (%I) and ''Infinity'' > all (%I)', col.name, col.name)
            else format('isfinite(%I)', col.name) end;
        -- What is left to repair: rows of the other tables (the usage tables are finite by now).
        if col.type = 'timestamptz' then
            execute format('update %I.%I set %I = %s where not (%s)', col.sch, col.tab, col.name,
                           case when col.not_null then 'now()' else 'null' end, finite);
        elsif col.not_null then
            execute format('delete from %I.%I where not (%s)', col.sch, col.tab, finite);
        else
            begin
                execute format('update %I.%I set %I = null where not (%s)', col.sch, col.tab, col.name, finite);
            exception when check_violation then  -- e.g. a budget's only limit: the row means nothing without it
                execute format('delete from %I.%I where not (%s)', col.sch, col.tab, finite);
                col.not_null := true;
            end;
        end if;
        get diagnostics changed = row_count;
        if changed > 0 then
            raise notice 'llmtally: %.%: % rows held a non-finite %: %', col.sch, col.tab, changed, col.name,
                case when col.type = 'timestamptz' then 'set to ' || case when col.not_null then 'now' else 'null' end
                     when col.not_null then 'deleted' else 'set to null' end;
        end if;
        execute format('alter table %I.%I add constraint %I check (%s)', col.sch, col.tab,
                       col.tab || '_' || col.name || '_finite', finite);
    end loop;
end
$$;

create or replace function public.llmtally_ingest(events jsonb) returns integer
    language plpgsql
    set search_path = ''
as $$
declare
    rows public.llmtally_event[];
    bad record;
begin
    if events is null or pg_catalog.jsonb_typeof(events) <> 'array' then
        raise exception 'llmtally_ingest expects a JSON array of events, not %',
            coalesce(pg_catalog.jsonb_typeof(events), 'null')
            using errcode = '22023';
    end if;
    if exists (select from pg_catalog.jsonb_array_elements(events) e where pg_catalog.jsonb_typeof(e) <> 'object') then
        raise exception 'llmtally_ingest expects every event to be a JSON object' using errcode = '22023';
    end if;
    -- Token counts are integers: a value that is not a whole number is named here, not by the cast.
    select e.ordinality as seq, f.name, e.value ->> f.name as value into bad
      from pg_catalog.jsonb_array_elements(events) with ordinality as e
     cross join (values ('prompt_tokens'), ('completion_tokens'), ('tokens_used'), ('cached_tokens'),
                        ('cache_creation_tokens'), ('reasoning_tokens'), ('audio_tokens'), ('latency_ms')) f(name)
     where pg_catalog.jsonb_typeof(e.value -> f.name) in ('string', 'number', 'boolean', 'object', 'array')
       and (e.value ->> f.name) operator(pg_catalog.!~) '^\s*[+-]?[0-9]{1,10}\s*$'
     order by e.ordinality
     limit 1;
    if found then
        raise exception 'llmtally_ingest: event % has % = %, which is not a whole number', bad.seq, bad.name,
            pg_catalog.left(bad.value, 40)
            using errcode = '22P02';
    end if;
    rows := array(
        select pg_catalog.jsonb_populate_record(null::public.llmtally_event,
                                                e.value || pg_catalog.jsonb_build_object('seq', e.ordinality))
          from pg_catalog.jsonb_array_elements(events) with ordinality as e
         order by e.ordinality);
    select r.seq,
           case when not (r.total_cost > '-Infinity' and r.total_cost < 'Infinity') then 'total_cost'
                when not (r.saved_cost > '-Infinity' and r.saved_cost < 'Infinity') then 'saved_cost'
                else 'created_at' end as name,
           case when not (r.total_cost > '-Infinity' and r.total_cost < 'Infinity') then r.total_cost::text
                when not (r.saved_cost > '-Infinity' and r.saved_cost < 'Infinity') then r.saved_cost::text
                else r.created_at::text end as value
      into bad
      from pg_catalog.unnest(rows) r
     where not coalesce(r.total_cost > '-Infinity' and r.total_cost < 'Infinity', true)
        or not coalesce(r.saved_cost > '-Infinity' and r.saved_cost < 'Infinity', true)
        or not coalesce(pg_catalog.isfinite(r.created_at), true)
     order by r.seq
     limit 1;
    if found then
        raise exception 'llmtally_ingest: event % has a non-finite % (%)', bad.seq, bad.name, bad.value
            using errcode = '22003';
    end if;
    return public.llmtally_insert_events(rows);
end
$$;

comment on function public.llmtally_ingest(jsonb) is
    'Insert a JSON array of usage events (the Supabase API path); returns the number of new rows. Refuses, naming the field, a non-finite cost or time and a token count that is not a whole number. service_role only.';
