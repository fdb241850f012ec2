-- Analytics (llmtally.analytics): reads of the rollups and of request_logs. A line "-- name --" starts a query.

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

-- totals_by_model_as_user --
-- totals_by_model as the user (Analytics.for_user): usage_daily_totals is server-only; the user's
-- usage_daily rows have its columns (one user per day x model x provider under row-level security).
select t.*, coalesce(e.estimated_cost, 0) as estimated_cost
  from (select model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
               sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
               sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as cost,
               sum(unpriced_requests) as unpriced_requests,
       sum(attempts) as attempts, sum(failed_attempts) as failed_attempts, sum(cache_hits) as cache_hits,
       sum(estimated_requests) as estimated_requests, sum(cached_tokens) as cached_tokens,
       sum(cache_creation_tokens) as cache_creation_tokens, sum(reasoning_tokens) as reasoning_tokens,
       sum(audio_tokens) as audio_tokens, sum(saved_cost) as saved_cost
          from public.usage_daily
         where day >= %(since)s::date and day < %(until)s::date
         group by model, provider) t
  left join (select model, provider, sum(total_cost) as estimated_cost
               from public.request_logs
              where usage_source = 'estimated'
                and created_at >= %(since)s::date::timestamp at time zone 'UTC'
                and created_at < %(until)s::date::timestamp at time zone 'UTC'
              group by model, provider) e using (model, provider)
 order by t.cost desc, t.total_tokens desc, t.model

-- totals_by_day_as_user --
-- totals_by_day as the user (Analytics.for_user): usage_daily_totals is server-only; the user's
-- usage_daily rows have its columns (one user per day x model x provider under row-level security).
select t.day, t.requests, t.failures, t.total_tokens, t.cost, coalesce(a.active_users, 0) as active_users
  from (select day, sum(requests) as requests, sum(failures) as failures, sum(tokens) as total_tokens,
               sum(cost) as cost
          from public.usage_daily
         where day >= %(since)s::date and day < %(until)s::date
         group by day) t
  left join (select day, count(distinct user_id) as active_users
               from public.usage_daily
              where day >= %(since)s::date and day < %(until)s::date
              group by day) a on a.day = t.day
 order by t.day

-- error_rate_by_model_as_user --
-- error_rate_by_model as the user (Analytics.for_user): usage_daily_totals is server-only; the user's
-- usage_daily rows have its columns (one user per day x model x provider under row-level security).
select model, provider, sum(requests) as requests, sum(failures) as failures,
       round(sum(failures)::numeric / nullif(sum(requests), 0), 4) as error_rate
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date
 group by model, provider
 order by error_rate desc nulls last, requests desc, model

-- period_totals_as_user --
-- period_totals as the user (Analytics.for_user): usage_daily_totals is server-only; the user's
-- usage_daily rows have its columns (one user per day x model x provider under row-level security).
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
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date

-- daily_by_model_as_user --
-- daily_by_model as the user (Analytics.for_user): usage_daily_totals is server-only; the user's
-- usage_daily rows have its columns (one user per day x model x provider under row-level security).
select day, model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
       sum(tokens) as total_tokens, sum(cost) as cost, sum(unpriced_requests) as unpriced_requests
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date
 group by day, model, provider
 order by day, model, provider

-- unpriced_models_as_user --
-- unpriced_models as the user (Analytics.for_user): usage_daily_totals is server-only; the user's
-- usage_daily rows have its columns (one user per day x model x provider under row-level security).
select model, provider, sum(unpriced_requests) as unpriced_requests, sum(tokens) as total_tokens,
       max(day) as last_day
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date and unpriced_requests > 0
 group by model, provider
 order by unpriced_requests desc, model

-- tag_usage --
-- Requests, tokens and cost by tag over the period, from the tagged calls only (request_logs_tagged_idx).
-- A call with two tags counts under each; one whose tags are not an array of strings under none.
select t.tag, count(*) as requests, coalesce(sum(r.tokens_used), 0) as total_tokens,
       coalesce(sum(r.total_cost), 0) as cost, count(*) filter (where r.cost_status = 'unpriced') as unpriced_requests
  from public.request_logs r
 cross join lateral jsonb_array_elements_text(
           case when jsonb_typeof(r.metadata -> 'tags') = 'array' then r.metadata -> 'tags' else '[]'::jsonb end
       ) t(tag)
 where r.metadata ? 'tags'
   and r.created_at >= %(since)s::date::timestamp at time zone 'UTC'
   and r.created_at < %(until)s::date::timestamp at time zone 'UTC'
 group by t.tag
 order by cost desc, requests desc, t.tag
 limit %(limit)s

-- refusals_by_user --
-- Calls refused by a hard budget or a rate limit over the period (migration 0021), by user, reason and
-- model, most refused first.
select user_id, reason, model, sum(refused) as refused, max(last_at) as last_at
  from public.refusals
 where day >= %(since)s::date and day < %(until)s::date
 group by user_id, reason, model
 order by refused desc, user_id, reason, model
 limit %(limit)s

-- refusal_totals --
-- The period's refusals by reason (budget, unpriced, rpm, tpm).
select reason, sum(refused) as refused
  from public.refusals
 where day >= %(since)s::date and day < %(until)s::date
 group by reason
