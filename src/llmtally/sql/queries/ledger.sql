-- Named queries, loaded once by llmtally.db.queries. A line "-- name --" starts a query.

-- create_stage --
-- A batch of events lands here by COPY, then moves to request_logs in one statement.
create temp table llmtally_stage of public.llmtally_event on commit drop

-- copy_stage --
copy llmtally_stage (seq, user_profile_id, end_user, session_id, litellm_call_id, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
    error, error_type, latency_ms, stream, metadata, created_at, call_key, attempt_key, trace_id, model_group,
    model_id, api_base, cache_hit, saved_cost, usage_source, cached_tokens, cache_creation_tokens,
    reasoning_tokens, audio_tokens) from stdin

-- insert_from_stage --
-- The insert itself (user from the session map, custom prices, on conflict do nothing) is the
-- function of migration 0002, shared with the Supabase API path (llmtally_ingest).
select public.llmtally_insert_events(array(select s::public.llmtally_event from llmtally_stage s))

-- create_line_stage --
-- The fast path: spool records (JSON lines written by llmtally.ledger.spool.encode) land here by COPY
-- as they are, and PostgreSQL reads their fields; Python neither decodes nor re-encodes them.
create temp table llmtally_line_stage (seq integer generated always as identity, r jsonb not null) on commit drop

-- line_stage_storage --
-- A record with content is larger than TOAST's 2 kB threshold: by default the stage would compress it,
-- and request_logs would compress the extracted content again. Stored out of line uncompressed here, the
-- content is compressed once (measured: 1.7 times the batches per second of compressing in the stage).
alter table llmtally_line_stage alter column r set storage external

-- copy_line_stage --
copy llmtally_line_stage (r) from stdin

-- insert_from_line_stage --
-- The same rows as event_row() in ledger/writer.py builds from a decoded record, for records that
-- PostgreSQL accepts as jsonb (NUL, lone surrogates and NaN make the batch take the Python path).
select public.llmtally_insert_events(array(
    select row(s.seq,
               nullif(s.r ->> 'user', ''),
               s.r ->> 'end_user',
               s.r ->> 'session',
               s.r ->> 'id',
               coalesce(nullif(s.r ->> 'model', ''), 'unknown'),
               coalesce(nullif(s.r ->> 'provider', ''), 'unknown'),
               greatest(0, t.pt),
               greatest(0, t.ct),
               greatest(0, case when t.tt is not null and t.tt >= t.pt + t.ct then t.tt else t.pt + t.ct end),
               (s.r ->> 'c')::numeric,
               s.r ->> 'cs',
               case when %(store_content)s then nullif(s.r -> 'messages', 'null'::jsonb) end,
               case when %(store_content)s then nullif(s.r -> 'response', 'null'::jsonb) end,
               s.r ->> 'status',
               s.r ->> 'error',
               s.r ->> 'error_type',
               case when s.r ->> 'latency' is not null then greatest(0, (s.r ->> 'latency')::integer) end,
               coalesce((s.r ->> 'stream')::boolean, false),
               case when jsonb_typeof(s.r -> 'meta') = 'object' then s.r -> 'meta'
                    when coalesce(jsonb_typeof(s.r -> 'meta'), 'null') = 'null' then '{}'::jsonb
                    else jsonb_build_object('value', s.r -> 'meta') end
               || case when coalesce((s.r ->> 'trunc')::boolean, false)
                       then jsonb_build_object('_llmtally_content',
                                jsonb_build_object('truncated', true, 'original_bytes', s.r -> 'orig'))
                       else '{}'::jsonb end,
               case when s.r ->> 'at' ~ '([+-][0-9]{2}(:?[0-9]{2})?|Z)$' then (s.r ->> 'at')::timestamptz
                    else (s.r ->> 'at')::timestamp at time zone 'UTC' end,
               -- migration 0009; a record written before it has none of these: the defaults apply
               s.r ->> 'key',
               s.r ->> 'ak',
               s.r ->> 'trace',
               s.r ->> 'group',
               s.r ->> 'mid',
               s.r ->> 'base',
               coalesce((s.r ->> 'hit')::boolean, false),
               case when jsonb_typeof(s.r -> 'saved') = 'number' and (s.r ->> 'saved')::numeric >= 0
                    then round((s.r ->> 'saved')::numeric, 12) end,
               coalesce(s.r ->> 'src', 'provider'),
               greatest(0, coalesce((s.r ->> 'cat')::integer, 0)),
               greatest(0, coalesce((s.r ->> 'ccr')::integer, 0)),
               greatest(0, coalesce((s.r ->> 'rt')::integer, 0)),
               greatest(0, coalesce((s.r ->> 'aud')::integer, 0))
           )::public.llmtally_event
      from llmtally_line_stage s
     cross join lateral (select coalesce((s.r ->> 'pt')::integer, 0) as pt,
                                coalesce((s.r ->> 'ct')::integer, 0) as ct,
                                (s.r ->> 'tt')::integer as tt) t
     order by s.seq))

-- upsert_user --
select public.llmtally_upsert_user(%(user_id)s, %(email)s, %(full_name)s, %(provider)s)

-- link_session --
select public.llmtally_link_session(%(session_id)s, %(user_id)s)

-- user_analytics --
select user_id, email, full_name, provider, total_requests, successful_requests, failed_requests,
       cancelled_requests, error_rate, prompt_tokens, completion_tokens, total_tokens, total_cost,
       unpriced_requests, models_used, first_request_at, last_request_at
  from public.user_request_analytics
 where user_id = %(user_id)s

-- user_exists --
select 1 from public.user_profiles where user_id = %(user_id)s

-- user_history --
select id, litellm_call_id, created_at, model, provider, status, prompt_tokens, completion_tokens,
       tokens_used, total_cost, cost_status, latency_ms, stream, error_type, error, session_id, cache_hit,
       saved_cost, usage_source, attempt_count, failed_attempts, cached_tokens, cache_creation_tokens,
       reasoning_tokens
  from public.request_logs
 where user_profile_id = %(user_id)s
   and (%(before_at)s::timestamptz is null or (created_at, id) < (%(before_at)s::timestamptz, %(before_id)s::bigint))
 order by created_at desc, id desc
 limit %(limit)s

-- user_breakdown_by_model --
-- Whole months of the period from usage_monthly, the days around them from usage_daily
-- (Analytics.month_split computes the three ranges; an empty range selects nothing).
select model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
       sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as cost,
       sum(unpriced_requests) as unpriced_requests,
       sum(attempts) as attempts, sum(failed_attempts) as failed_attempts, sum(cache_hits) as cache_hits,
       sum(estimated_requests) as estimated_requests, sum(cached_tokens) as cached_tokens,
       sum(cache_creation_tokens) as cache_creation_tokens, sum(reasoning_tokens) as reasoning_tokens,
       sum(audio_tokens) as audio_tokens, sum(saved_cost) as saved_cost
  from (select model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens,
               cost, unpriced_requests, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens,
               cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost
          from public.usage_monthly
         where user_id = %(user_id)s and month >= %(m_from)s::date and month < %(m_until)s::date
        union all
        select model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens,
               cost, unpriced_requests, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens,
               cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost
          from public.usage_daily
         where user_id = %(user_id)s
           and ((day >= %(d1_from)s::date and day < %(d1_until)s::date)
                or (day >= %(d2_from)s::date and day < %(d2_until)s::date))) r
 group by model, provider
 order by cost desc, total_tokens desc, model
-- user_monthly --
-- One user's months from usage_monthly (a few rows per month, one per model and provider), totals and
-- both breakdowns each built in one grouped pass and joined by month.
with d as (
    select month, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens,
           tokens, cost, unpriced_requests
      from public.usage_monthly
     where user_id = %(user_id)s
       and month >= %(first_month)s::date
), t as (
    select month, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
           sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
           sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as total_cost,
           sum(unpriced_requests) as unpriced_requests
      from d group by month
), m as (
    select month, jsonb_object_agg(model, jsonb_build_object('requests', requests, 'tokens', tokens, 'cost', cost,
                                                       'unpriced_requests', unpriced_requests))
               as model_breakdown
      from (select month, model, sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost,
                   sum(unpriced_requests) as unpriced_requests
              from d group by month, model) x
     group by month
), v as (
    select month, jsonb_object_agg(provider, jsonb_build_object('requests', requests, 'tokens', tokens, 'cost', cost))
               as provider_breakdown
      from (select month, provider, sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost
              from d group by month, provider) x
     group by month
)
select %(user_id)s::text as user_id, t.month, t.requests, t.successes, t.failures, t.cancelled, t.prompt_tokens,
       t.completion_tokens, t.total_tokens, t.total_cost, t.unpriced_requests, m.model_breakdown, v.provider_breakdown
  from t
  join m on m.month = t.month
  join v on v.month = t.month
 order by t.month desc
-- top_users --
-- Sums per user first (usage_monthly_users for the whole months, usage_daily for the days around
-- them: see user_breakdown_by_model), then names for the few users shown.
select r.user_id, p.email, p.full_name, r.requests, r.total_tokens, r.cost, r.failures
  from (select user_id, sum(requests) as requests, sum(tokens) as total_tokens, sum(cost) as cost,
               sum(failures) as failures
          from (select user_id, requests, tokens, cost, failures
                  from public.usage_monthly_users
                 where month >= %(m_from)s::date and month < %(m_until)s::date and user_id is not null
                union all
                select user_id, requests, tokens, cost, failures
                  from public.usage_daily
                 where ((day >= %(d1_from)s::date and day < %(d1_until)s::date)
                        or (day >= %(d2_from)s::date and day < %(d2_until)s::date))
                   and user_id is not null) u
         group by user_id
         order by cost desc, total_tokens desc, user_id
         limit %(limit)s) r
  join public.user_profiles p on p.user_id = r.user_id
 order by r.cost desc, r.total_tokens desc, r.user_id
-- top_users_one_month --
-- One whole month: usage_monthly_users_top_idx returns the month's users in this order, so only
-- %(limit)s rows are read.
select u.user_id, p.email, p.full_name, u.requests, u.tokens as total_tokens, u.cost, u.failures
  from public.usage_monthly_users u
  join public.user_profiles p on p.user_id = u.user_id
 where u.month = %(month)s::date and u.user_id is not null
 order by u.cost desc, u.tokens desc, u.user_id
 limit %(limit)s
-- later_month_exists --
select exists (select 1 from public.usage_monthly_users
                where month > %(month)s::date and month < %(m_until)s::date) as later
-- totals_by_model --
-- Sums from usage_daily_totals; the cost of calls whose usage was estimated (no usage from the provider)
-- from request_logs through its partial index of those calls.
select t.*, coalesce(e.estimated_cost, 0) as estimated_cost
  from (select model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
               sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
               sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as cost,
               sum(unpriced_requests) as unpriced_requests,
       sum(attempts) as attempts, sum(failed_attempts) as failed_attempts, sum(cache_hits) as cache_hits,
       sum(estimated_requests) as estimated_requests, sum(cached_tokens) as cached_tokens,
       sum(cache_creation_tokens) as cache_creation_tokens, sum(reasoning_tokens) as reasoning_tokens,
       sum(audio_tokens) as audio_tokens, sum(saved_cost) as saved_cost
          from public.usage_daily_totals
         where day >= %(since)s::date and day < %(until)s::date
         group by model, provider) t
  left join (select model, provider, sum(total_cost) as estimated_cost
               from public.request_logs
              where usage_source = 'estimated'
                and created_at >= %(since)s::date::timestamp at time zone 'UTC'
                and created_at < %(until)s::date::timestamp at time zone 'UTC'
              group by model, provider) e using (model, provider)
 order by t.cost desc, t.total_tokens desc, t.model
-- totals_by_day --
-- Sums from usage_daily_totals; active users (distinct, not additive) from usage_daily's day index.
select t.day, t.requests, t.failures, t.total_tokens, t.cost, coalesce(a.active_users, 0) as active_users
  from (select day, sum(requests) as requests, sum(failures) as failures, sum(tokens) as total_tokens,
               sum(cost) as cost
          from public.usage_daily_totals
         where day >= %(since)s::date and day < %(until)s::date
         group by day) t
  left join (select day, count(distinct user_id) as active_users
               from public.usage_daily
              where day >= %(since)s::date and day < %(until)s::date
              group by day) a on a.day = t.day
 order by t.day
-- error_rate_by_deployment --
-- Every attempt of the period (retries and fallbacks included) by deployment: the model group and
-- the API host the call went to. A retry is an attempt after the first of its call.
select coalesce(model_group, model) as model_group, model, provider, coalesce(api_base, '') as api_base,
       count(*) as attempts, count(*) filter (where status = 'failure') as failed_attempts,
       round((count(*) filter (where status = 'failure'))::numeric / count(*), 4) as error_rate,
       round(avg(latency_ms)) as avg_latency_ms
  from public.request_attempts
 where created_at >= %(since)s::date::timestamp at time zone 'UTC'
   and created_at < %(until)s::date::timestamp at time zone 'UTC'
 group by 1, 2, 3, 4
 order by error_rate desc, attempts desc, model_group, model
 limit 200

-- error_rate_by_model --
select model, provider, sum(requests) as requests, sum(failures) as failures,
       round(sum(failures)::numeric / nullif(sum(requests), 0), 4) as error_rate
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date
 group by model, provider
 order by error_rate desc nulls last, requests desc, model
-- list_users --
select user_id, email, full_name, provider, request_count, tokens_used, total_cost, last_request_at, last_seen_at
  from public.user_profiles
 order by total_cost desc, tokens_used desc, user_id
 limit %(limit)s

-- list_prices --
select model, input_cost_per_token, output_cost_per_token, cache_read_cost_per_token, cache_creation_cost_per_token,
       updated_at
  from public.model_prices
 order by model

-- set_price --
insert into public.model_prices (model, input_cost_per_token, output_cost_per_token, cache_read_cost_per_token,
                                 cache_creation_cost_per_token)
values (%(model)s, %(input)s, %(output)s, %(cache_read)s, %(cache_creation)s)
on conflict (model) do update set
    input_cost_per_token = excluded.input_cost_per_token,
    output_cost_per_token = excluded.output_cost_per_token,
    cache_read_cost_per_token = excluded.cache_read_cost_per_token,
    cache_creation_cost_per_token = excluded.cache_creation_cost_per_token,
    updated_at = now()

-- delete_price --
delete from public.model_prices where model = %(model)s

-- recorded_models --
select distinct model, provider from public.usage_daily_totals order by model, provider

-- reprice_custom --
-- Rows of a model with a custom price: its cost of every token type (llmtally_custom_cost). A cache hit
-- keeps its cost (0).
update public.request_logs r
   set total_cost = public.llmtally_custom_cost(mp, r.prompt_tokens, r.completion_tokens, r.cached_tokens,
                                                r.cache_creation_tokens),
       cost_status = 'custom'
  from public.model_prices mp
 where r.model = %(model)s and r.provider = %(provider)s and not r.cache_hit
   and mp.model = %(price_key)s
   and (r.cost_status <> 'custom'
        or r.total_cost is distinct from public.llmtally_custom_cost(mp, r.prompt_tokens, r.completion_tokens,
                                                                     r.cached_tokens, r.cache_creation_tokens))

-- repriceable_usages --
-- The distinct usages of a model's rows whose cost llmtally set (not one the provider reported), to be
-- priced again from LiteLLM's price map. A cache hit keeps its cost (0).
select distinct prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens,
       audio_tokens
  from public.request_logs
 where model = %(model)s and provider = %(provider)s and not cache_hit
   and cost_status in ('custom', 'unpriced', 'recomputed')

-- reprice_map --
-- Those rows, each at the cost of its usage (computed with LiteLLM's cost function by the caller).
update public.request_logs r
   set total_cost = u.cost, cost_status = case when u.cost is null then 'unpriced' else 'recomputed' end
  from unnest(%(prompt_tokens)s::integer[], %(completion_tokens)s::integer[], %(cached_tokens)s::integer[],
                %(cache_creation_tokens)s::integer[], %(reasoning_tokens)s::integer[],
                %(audio_tokens)s::integer[], %(cost)s::numeric[])
       as u(prompt_tokens, completion_tokens, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, cost)
 where r.model = %(model)s and r.provider = %(provider)s and not r.cache_hit
   and r.cost_status in ('custom', 'unpriced', 'recomputed')
   and (r.prompt_tokens, r.completion_tokens, r.cached_tokens, r.cache_creation_tokens, r.reasoning_tokens,
        r.audio_tokens)
       = (u.prompt_tokens, u.completion_tokens, u.cached_tokens, u.cache_creation_tokens, u.reasoning_tokens,
          u.audio_tokens)
   and (r.total_cost is distinct from u.cost
        or r.cost_status <> case when u.cost is null then 'unpriced' else 'recomputed' end)

-- reprice_unpriced --
-- A custom price was removed and no other price is known: back to unpriced, never a silent 0.
update public.request_logs r
   set total_cost = null, cost_status = 'unpriced'
 where r.model = %(model)s and r.provider = %(provider)s and r.cost_status = 'custom' and not r.cache_hit

-- create_api_token --
insert into public.api_tokens (user_id, name, token_hash, prefix, expires_at)
values (%(user_id)s, %(name)s, %(token_hash)s, %(prefix)s, %(expires_at)s)
returning id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at

-- list_api_tokens --
select id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at
  from public.api_tokens
 where (%(user_id)s::text is null or user_id = %(user_id)s::text)
 order by created_at desc, id desc

-- revoke_api_token --
update public.api_tokens set revoked_at = now()
 where (id::text = %(key)s or prefix = %(key)s) and revoked_at is null
returning id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at

-- check_api_token --
-- The token's owner when it is valid; last_used_at is refreshed at most once a minute.
update public.api_tokens
   set last_used_at = case when last_used_at is null or last_used_at < now() - interval '1 minute'
                           then now() else last_used_at end
 where token_hash = %(token_hash)s and revoked_at is null and (expires_at is null or expires_at > now())
returning user_id

-- period_totals --
-- Dashboard totals of one period: sums from usage_daily_totals; active users (distinct, so not a sum)
-- from usage_monthly_users for the whole months and usage_daily for the days around them.
select coalesce(sum(requests), 0) as requests, coalesce(sum(failures), 0) as failures,
       coalesce(sum(tokens), 0) as total_tokens, coalesce(sum(cost), 0) as cost,
       (select count(distinct user_id)
          from (select user_id from public.usage_monthly_users
                 where month >= %(m_from)s::date and month < %(m_until)s::date
                union all
                select user_id from public.usage_daily
                 where (day >= %(d1_from)s::date and day < %(d1_until)s::date)
                    or (day >= %(d2_from)s::date and day < %(d2_until)s::date)) u) as active_users,
       coalesce(sum(unpriced_requests), 0) as unpriced_requests
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date

-- daily_by_model --
select day, model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
       sum(tokens) as total_tokens, sum(cost) as cost, sum(unpriced_requests) as unpriced_requests
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date
 group by day, model, provider
 order by day, model, provider

-- unpriced_models --
select model, provider, sum(unpriced_requests) as unpriced_requests, sum(tokens) as total_tokens,
       max(day) as last_day
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date and unpriced_requests > 0
 group by model, provider
 order by unpriced_requests desc, model

-- recent_failures --
-- Newest failures of the period, from the partial index request_logs_failures_idx.
select r.id, r.created_at, r.user_profile_id as user_id, r.model, r.provider, r.error_type, r.error, r.latency_ms
  from public.request_logs r
 where r.status = 'failure'
   and r.created_at >= %(since)s::date::timestamp at time zone 'UTC'
   and r.created_at < %(until)s::date::timestamp at time zone 'UTC'
 order by r.created_at desc, r.id desc
 limit %(limit)s

-- latency_histogram --
-- Latency of the most recent requests of the period (at most %(sample)s rows, read backwards along
-- request_logs_created_idx), counted in fixed buckets: bounded work at any table size.
with recent as (
    select latency_ms
      from public.request_logs
     where created_at >= %(since)s::date::timestamp at time zone 'UTC'
       and created_at < %(until)s::date::timestamp at time zone 'UTC'
     order by created_at desc
     limit %(sample)s
)
select b.upper_ms, count(r.latency_ms) as requests
  from unnest(%(bounds)s::int[]) with ordinality as b(upper_ms, n)
  left join recent r
    on r.latency_ms is not null
   and r.latency_ms <= b.upper_ms
   and r.latency_ms > coalesce((%(bounds)s::int[])[b.n - 1], -1)
 group by b.upper_ms, b.n
 order by b.n

-- user_recent_requests --
select id, litellm_call_id, created_at, model, provider, status, prompt_tokens, completion_tokens,
       tokens_used, total_cost, cost_status, latency_ms, stream, error_type, error, session_id, cache_hit,
       saved_cost, usage_source, attempt_count, failed_attempts, cached_tokens, cache_creation_tokens,
       reasoning_tokens,
       case when %(with_content)s then messages end as messages,
       case when %(with_content)s then response end as response
  from public.request_logs
 where user_profile_id = %(user_id)s
 order by created_at desc, id desc
 limit %(limit)s

-- export_requests --
-- Streamed through a server-side cursor; the period reads request_logs_created_idx.
select id, created_at, user_profile_id, end_user, session_id, litellm_call_id, model, provider, status,
       prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, latency_ms, stream,
       error_type, error, metadata::text as metadata, messages::text as messages, response::text as response
  from public.request_logs
 where (%(since)s::date is null or created_at >= %(since)s::date::timestamp at time zone 'UTC')
   and (%(until)s::date is null or created_at < %(until)s::date::timestamp at time zone 'UTC')
   and (%(user_id)s::text is null or user_profile_id = %(user_id)s::text)
 order by created_at, id

-- count_export --
select count(*) as n
  from public.request_logs
 where (%(since)s::date is null or created_at >= %(since)s::date::timestamp at time zone 'UTC')
   and (%(until)s::date is null or created_at < %(until)s::date::timestamp at time zone 'UTC')
   and (%(user_id)s::text is null or user_profile_id = %(user_id)s::text)

-- quarantine_insert --
insert into public.quarantine (litellm_call_id, reason, raw_event, raw_bytes) values (%s, %s, %s, %s)

-- create_web_session --
-- A login's session; expired rows of the past week are swept as new ones are made.
with swept as (delete from public.web_sessions where expires_at < now() - interval '7 days')
insert into public.web_sessions (user_id, provider, expires_at)
values (%(user_id)s, %(provider)s, now() + make_interval(secs => %(lifetime_seconds)s))
returning id::text as id, expires_at

-- active_web_session --
-- The session when it is the user's and neither revoked nor expired.
select expires_at from public.web_sessions
 where id = %(session_id)s::uuid and user_id = %(user_id)s and revoked_at is null and expires_at > now()

-- revoke_web_session --
update public.web_sessions set revoked_at = now(), revoked_why = %(why)s
 where id = %(session_id)s::uuid and revoked_at is null

-- revoke_user_web_sessions --
update public.web_sessions set revoked_at = now(), revoked_why = %(why)s
 where user_id = %(user_id)s and revoked_at is null and expires_at > now()

-- revoke_removed_password_sessions --
-- Sessions of password logins that LLMTALLY_USERS no longer names.
update public.web_sessions set revoked_at = now(), revoked_why = 'login removed'
 where provider = 'password' and revoked_at is null and expires_at > now()
   and not (user_id = any(%(kept)s::text[]))
returning user_id

-- removed_password_tokens --
-- Active API tokens of password logins that LLMTALLY_USERS no longer names (kept: a token is revoked only
-- by `llmtally tokens revoke` or `llmtally users revoke-sessions --tokens`).
select user_id, count(*) as tokens from public.api_tokens
 where user_id like 'password\_%%' and revoked_at is null and (expires_at is null or expires_at > now())
   and not (user_id = any(%(kept)s::text[]))
 group by user_id order by user_id

-- revoke_user_api_tokens --
update public.api_tokens set revoked_at = now()
 where user_id = %(user_id)s and revoked_at is null

-- chat_own_thread --
-- The chat's data layer (app/datalayer.py) writes only into threads of the acting user (%(me)s): a new
-- thread is created as theirs. A row when the thread is theirs, none otherwise. (ON CONFLICT sees a
-- thread another transaction has just made, which a plain select in this statement would not.)
insert into chat.threads as t (id, user_id, user_identifier)
values (%(thread_id)s, (select id from chat.users where identifier = %(me)s), %(me)s)
on conflict (id) do update set user_id = coalesce(t.user_id, excluded.user_id)
 where t.user_identifier = excluded.user_identifier
returning true as mine

-- chat_upsert_thread --
-- Create the acting user's thread or update it; another user's thread is left alone (no row).
insert into chat.threads as t (id, name, user_id, user_identifier, tags, metadata)
select %(id)s, %(name)s, u.id, u.identifier, %(tags)s, %(meta)s::jsonb
  from chat.users u
 where u.identifier = %(me)s and (%(user_id)s::uuid is null or u.id = %(user_id)s::uuid)
on conflict (id) do update set
    name = coalesce(excluded.name, t.name),
    user_id = coalesce(t.user_id, excluded.user_id),
    tags = coalesce(excluded.tags, t.tags),
    metadata = t.metadata || excluded.metadata,
    updated_at = now()
 where t.user_identifier = excluded.user_identifier

-- chat_delete_thread --
delete from chat.threads where id = %(id)s and user_identifier = %(me)s

-- chat_upsert_step --
-- A message of the acting user's thread; a step id of another thread is left alone (no row).
insert into chat.steps as s (id, thread_id, parent_id, name, type, input, output, metadata, is_error,
                             show_input, language, generation, tags, start_time, end_time)
select %(id)s, %(thread_id)s, %(parent_id)s, %(name)s, %(type)s, %(input)s, %(output)s,
       %(metadata)s::jsonb, %(is_error)s, %(show_input)s, %(language)s, %(generation)s::jsonb,
       %(tags)s, %(start)s, %(end)s
 where exists (select 1 from chat.threads t where t.id = %(thread_id)s and t.user_identifier = %(me)s)
on conflict (id) do update set
    name = coalesce(excluded.name, s.name),
    input = coalesce(nullif(excluded.input, ''), s.input),
    output = coalesce(nullif(excluded.output, ''), s.output),
    metadata = case when excluded.metadata <> '{}'::jsonb then excluded.metadata else s.metadata end,
    is_error = excluded.is_error or s.is_error,
    generation = coalesce(excluded.generation, s.generation),
    tags = coalesce(excluded.tags, s.tags),
    end_time = coalesce(excluded.end_time, s.end_time)
 where s.thread_id = excluded.thread_id

-- chat_delete_step --
delete from chat.steps s using chat.threads t
 where s.id = %(id)s and t.id = s.thread_id and t.user_identifier = %(me)s

-- chat_upsert_feedback --
-- Feedback on a message of the acting user's thread; another user's feedback id is left alone (no row).
insert into chat.feedbacks as f (id, step_id, thread_id, value, comment)
select %(id)s, s.id, s.thread_id, %(value)s, %(comment)s
  from chat.steps s join chat.threads t on t.id = s.thread_id
 where s.id = %(step)s and t.user_identifier = %(me)s
on conflict (id) do update set value = excluded.value, comment = excluded.comment
 where f.step_id = excluded.step_id

-- chat_delete_feedback --
delete from chat.feedbacks f using chat.threads t
 where f.id = %(id)s and t.id = f.thread_id and t.user_identifier = %(me)s

-- chat_upsert_element --
insert into chat.elements as e (id, thread_id, step_id, type, name, mime, url, chainlit_key, display, size,
                                language, page, props)
select %(id)s, %(thread)s, %(step)s, %(type)s, %(name)s, %(mime)s, %(url)s, %(key)s, %(display)s, %(size)s,
       %(language)s, %(page)s, %(props)s::jsonb
 where exists (select 1 from chat.threads t where t.id = %(thread)s and t.user_identifier = %(me)s)
on conflict (id) do update set props = excluded.props
 where e.thread_id = excluded.thread_id

-- chat_delete_element --
delete from chat.elements e using chat.threads t
 where e.id = %(id)s and (%(t)s::text is null or e.thread_id = %(t)s)
   and t.id = e.thread_id and t.user_identifier = %(me)s
