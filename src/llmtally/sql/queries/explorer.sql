-- The request explorer (/admin/requests, /usage/requests) and the latency view of the dashboard.
-- explorer_requests takes its ORDER BY from one of the explorer_order_* entries below, chosen from a
-- fixed list in llmtally.analytics.explorer (never from user text): the "{order}" mark is replaced.
-- Every filter is optional (NULL: not applied); the plan is made with the values known, so an absent
-- filter costs nothing. The period is [since, until) in UTC; the page is LIMIT/OFFSET with a capped offset.

-- explorer_requests --
select r.id, r.created_at, r.user_profile_id, r.end_user, r.model, r.provider, r.status, r.prompt_tokens,
       r.completion_tokens, r.tokens_used, r.total_cost, r.cost_status, r.latency_ms, r.stream,
       r.cache_hit, r.usage_source, r.attempt_count, r.failed_attempts, r.error_type,
       case when %(with_content)s then r.messages end as messages,
       case when %(with_content)s then r.response end as response
  from public.request_logs r
 where (%(user_id)s::text is null or r.user_profile_id = %(user_id)s::text)
   and (%(end_user)s::text is null or r.end_user = %(end_user)s::text)
   and (%(model)s::text is null or r.model = %(model)s::text)
   and (%(provider)s::text is null or r.provider = %(provider)s::text)
   and (%(status)s::text is null or r.status = %(status)s::text)
   and (%(cache_hit)s::boolean is null or r.cache_hit = %(cache_hit)s::boolean)
   and (%(estimated)s::boolean is null or (r.usage_source = 'estimated') = %(estimated)s::boolean)
   and (%(since)s::timestamptz is null or r.created_at >= %(since)s::timestamptz)
   and (%(until)s::timestamptz is null or r.created_at < %(until)s::timestamptz)
   and (%(text)s::text is null or r.messages::text ilike %(text)s::text or r.response::text ilike %(text)s::text)
   and (%(tag)s::text is null or (r.metadata ? 'tags' and jsonb_typeof(r.metadata -> 'tags') = 'array'
                                  and r.metadata -> 'tags' ? %(tag)s::text))
 order by {order}
 limit %(limit)s offset %(offset)s

-- explorer_order_time_desc --
r.created_at desc, r.id desc

-- explorer_order_time_asc --
r.created_at, r.id

-- explorer_order_cost_desc --
r.total_cost desc nulls last, r.id desc

-- explorer_order_cost_asc --
r.total_cost nulls last, r.id

-- explorer_order_tokens_desc --
r.tokens_used desc, r.id desc

-- explorer_order_tokens_asc --
r.tokens_used, r.id

-- explorer_order_latency_desc --
r.latency_ms desc nulls last, r.id desc

-- explorer_order_latency_asc --
r.latency_ms nulls last, r.id

-- explorer_request --
-- One logical call by id; as a user, row-level security hides another user's call (and user_id does too).
select r.id, r.created_at, r.user_profile_id, r.end_user, r.session_id, r.litellm_call_id, r.call_key,
       r.trace_id, r.model, r.model_group, r.provider, r.status, r.error_type, r.error, r.prompt_tokens,
       r.completion_tokens, r.tokens_used, r.cached_tokens, r.cache_creation_tokens, r.reasoning_tokens,
       r.audio_tokens, r.total_cost, r.cost_status, r.cache_hit, r.saved_cost, r.usage_source,
       r.latency_ms, r.first_token_ms, r.stream, r.attempt_count, r.failed_attempts, r.metadata,
       r.content_truncated, r.content_original_bytes,
       case when %(with_content)s then r.messages end as messages,
       case when %(with_content)s then r.response end as response
  from public.request_logs r
 where r.id = %(id)s
   and (%(user_id)s::text is null or r.user_profile_id = %(user_id)s::text)

-- explorer_attempts --
-- Every attempt of one logical call, first to last (request_attempts_call_idx).
select a.id, a.created_at, a.litellm_call_id, a.status, a.model, a.provider, a.model_group, a.model_id,
       a.api_base, a.error_type, a.error, a.latency_ms, a.first_token_ms, a.prompt_tokens, a.completion_tokens, a.tokens_used,
       a.total_cost, a.cost_status, a.cache_hit, a.usage_source, a.stream
  from public.request_attempts a
 where a.call_key = %(call_key)s
   and (%(user_id)s::text is null or a.user_profile_id = %(user_id)s::text)
 order by a.created_at, a.id

-- explorer_choices --
-- The models and providers of the period, for the filters' drop-downs (from the daily rollup).
select distinct model, provider
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date
 order by model, provider
 limit 500

-- latency_percentiles_by_model --
-- p50/p95/p99 latency of the period's most recent logical calls (at most %(sample)s, read backwards along
-- request_logs_created_idx: bounded work at any table size) per model and provider, with the cancelled
-- and failed calls among them, and the time to first token of the streamed ones (first_token_ms is
-- null for the others, which percentile_disc leaves out).
with recent as (
    select model, provider, status, latency_ms, first_token_ms
      from public.request_logs
     where created_at >= %(since)s::date::timestamp at time zone 'UTC'
       and created_at < %(until)s::date::timestamp at time zone 'UTC'
     order by created_at desc
     limit %(sample)s
)
select model, provider, count(*) as requests, count(latency_ms) as timed,
       count(*) filter (where status = 'cancelled') as cancelled,
       count(*) filter (where status = 'failure') as failures,
       percentile_disc(0.5) within group (order by latency_ms) as p50_ms,
       percentile_disc(0.95) within group (order by latency_ms) as p95_ms,
       percentile_disc(0.99) within group (order by latency_ms) as p99_ms,
       count(first_token_ms) as streamed,
       percentile_disc(0.5) within group (order by first_token_ms) as first_token_p50_ms,
       percentile_disc(0.95) within group (order by first_token_ms) as first_token_p95_ms
  from recent
 group by model, provider
 order by requests desc, model, provider
 limit 200

-- latency_percentiles_by_deployment --
-- The same over attempts (retries and fallbacks included) per deployment: model group, model, API host
-- (request_attempts_created_idx).
with recent as (
    select coalesce(model_group, model) as model_group, model, provider, coalesce(api_base, '') as api_base,
           status, latency_ms, first_token_ms
      from public.request_attempts
     where created_at >= %(since)s::date::timestamp at time zone 'UTC'
       and created_at < %(until)s::date::timestamp at time zone 'UTC'
     order by created_at desc
     limit %(sample)s
)
select model_group, model, provider, api_base, count(*) as attempts, count(latency_ms) as timed,
       count(*) filter (where status = 'cancelled') as cancelled,
       count(*) filter (where status = 'failure') as failures,
       percentile_disc(0.5) within group (order by latency_ms) as p50_ms,
       percentile_disc(0.95) within group (order by latency_ms) as p95_ms,
       percentile_disc(0.99) within group (order by latency_ms) as p99_ms,
       count(first_token_ms) as streamed,
       percentile_disc(0.5) within group (order by first_token_ms) as first_token_p50_ms,
       percentile_disc(0.95) within group (order by first_token_ms) as first_token_p95_ms
  from recent
 group by model_group, model, provider, api_base
 order by attempts desc, model_group, model, api_base
 limit 200
