-- Named queries, loaded once by llmtally.db.queries. A line "-- name --" starts a query.

-- create_stage --
-- A batch of events lands here by COPY, then moves to request_logs in one statement.
create temp table llmtally_stage of public.llmtally_event on commit drop

-- copy_stage --
copy llmtally_stage (seq, user_profile_id, end_user, session_id, litellm_call_id, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
    error, error_type, latency_ms, stream, metadata, created_at) from stdin

-- insert_from_stage --
-- The insert itself (user from the session map, custom prices, on conflict do nothing) is the
-- function of migration 0002, shared with the Supabase API path (llmtally_ingest).
select public.llmtally_insert_events(array(select s::public.llmtally_event from llmtally_stage s))

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
       tokens_used, total_cost, cost_status, latency_ms, stream, error_type, error, session_id
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
       sum(unpriced_requests) as unpriced_requests
  from (select model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens,
               cost, unpriced_requests
          from public.usage_monthly
         where user_id = %(user_id)s and month >= %(m_from)s::date and month < %(m_until)s::date
        union all
        select model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens,
               cost, unpriced_requests
          from public.usage_daily
         where user_id = %(user_id)s
           and ((day >= %(d1_from)s::date and day < %(d1_until)s::date)
                or (day >= %(d2_from)s::date and day < %(d2_until)s::date))) r
 group by model, provider
 order by cost desc, total_tokens desc, model
-- user_monthly --
-- One user's months from usage_monthly: a few rows per month (one per model and provider).
with d as (
    select month, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens,
           tokens, cost
      from public.usage_monthly
     where user_id = %(user_id)s
       and month >= %(first_month)s::date
)
select %(user_id)s::text as user_id, t.month, t.requests, t.successes, t.failures, t.cancelled, t.prompt_tokens,
       t.completion_tokens, t.total_tokens, t.total_cost,
       (select jsonb_object_agg(m.model, jsonb_build_object('requests', m.requests, 'tokens', m.tokens, 'cost', m.cost))
          from (select model, sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost
                  from d where d.month = t.month group by model) m) as model_breakdown,
       (select jsonb_object_agg(v.provider, jsonb_build_object('requests', v.requests, 'tokens', v.tokens, 'cost', v.cost))
          from (select provider, sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost
                  from d where d.month = t.month group by provider) v) as provider_breakdown
  from (select month, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
               sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
               sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as total_cost
          from d group by month) t
 order by t.month desc
-- top_users --
-- Whole months from usage_monthly, the days around them from usage_daily (see user_breakdown_by_model).
select r.user_id, p.email, p.full_name, sum(r.requests) as requests, sum(r.tokens) as total_tokens,
       sum(r.cost) as cost, sum(r.failures) as failures
  from (select user_id, requests, tokens, cost, failures
          from public.usage_monthly
         where month >= %(m_from)s::date and month < %(m_until)s::date and user_id is not null
        union all
        select user_id, requests, tokens, cost, failures
          from public.usage_daily
         where ((day >= %(d1_from)s::date and day < %(d1_until)s::date)
                or (day >= %(d2_from)s::date and day < %(d2_until)s::date))
           and user_id is not null) r
  join public.user_profiles p on p.user_id = r.user_id
 group by r.user_id, p.email, p.full_name
 order by cost desc, total_tokens desc, r.user_id
 limit %(limit)s
-- totals_by_model --
select model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
       sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as cost,
       sum(unpriced_requests) as unpriced_requests
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date
 group by model, provider
 order by cost desc, total_tokens desc, model
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
-- totals_by_day_and_model --
select day, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens,
       tokens as total_tokens, cost, unpriced_requests
  from public.usage_daily_totals
 where day >= %(since)s::date and day < %(until)s::date
 order by day, model, provider
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
select model, input_cost_per_token, output_cost_per_token, updated_at from public.model_prices order by model

-- set_price --
insert into public.model_prices (model, input_cost_per_token, output_cost_per_token)
values (%(model)s, %(input)s, %(output)s)
on conflict (model) do update set
    input_cost_per_token = excluded.input_cost_per_token,
    output_cost_per_token = excluded.output_cost_per_token,
    updated_at = now()

-- delete_price --
delete from public.model_prices where model = %(model)s

-- recorded_models --
select distinct model, provider from public.usage_daily_totals order by model, provider

-- reprice_custom --
-- Rows of a model with a custom price: cost = tokens x that price.
update public.request_logs r
   set total_cost = r.prompt_tokens * mp.input_cost_per_token + r.completion_tokens * mp.output_cost_per_token,
       cost_status = 'custom'
  from public.model_prices mp
 where r.model = %(model)s and r.provider = %(provider)s
   and mp.model = %(price_key)s
   and (r.cost_status <> 'custom'
        or r.total_cost <> r.prompt_tokens * mp.input_cost_per_token + r.completion_tokens * mp.output_cost_per_token)

-- reprice_map --
-- Rows without a custom price any more, or never priced: recompute from LiteLLM's price map.
update public.request_logs r
   set total_cost = r.prompt_tokens * %(input)s::numeric + r.completion_tokens * %(output)s::numeric,
       cost_status = 'recomputed'
 where r.model = %(model)s and r.provider = %(provider)s
   and r.cost_status in ('custom', 'unpriced', 'recomputed')
   and r.total_cost is distinct from r.prompt_tokens * %(input)s::numeric + r.completion_tokens * %(output)s::numeric

-- reprice_unpriced --
-- A custom price was removed and no other price is known: back to unpriced, never a silent 0.
update public.request_logs r
   set total_cost = null, cost_status = 'unpriced'
 where r.model = %(model)s and r.provider = %(provider)s and r.cost_status = 'custom'
