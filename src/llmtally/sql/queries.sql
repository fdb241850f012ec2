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
select model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
       sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as cost,
       sum(unpriced_requests) as unpriced_requests
  from public.usage_daily
 where user_id = %(user_id)s
   and (%(since)s::date is null or day >= %(since)s::date)
   and (%(until)s::date is null or day < %(until)s::date)
 group by model, provider
 order by cost desc, total_tokens desc, model

-- user_monthly --
-- Read from usage_daily directly rather than through the monthly_token_usage view: the view matches
-- its per-month breakdowns to users with IS NOT DISTINCT FROM, which no index serves, so it would
-- aggregate every user's rollup rows. Here the user's rows come from one range of usage_daily_key.
with d as (
    select date_trunc('month', day)::date as month, model, provider,
           sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
           sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
           sum(completion_tokens) as completion_tokens, sum(tokens) as tokens, sum(cost) as cost
      from public.usage_daily
     where user_id = %(user_id)s
       and day >= %(first_month)s::date
     group by 1, 2, 3
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
select d.user_id, p.email, p.full_name, sum(d.requests) as requests, sum(d.tokens) as total_tokens,
       sum(d.cost) as cost, sum(d.failures) as failures
  from public.usage_daily d
  join public.user_profiles p on p.user_id = d.user_id
 where d.day >= %(since)s::date and d.day < %(until)s::date
 group by d.user_id, p.email, p.full_name
 order by cost desc, total_tokens desc, d.user_id
 limit %(limit)s

-- totals_by_model --
select model, provider, sum(requests) as requests, sum(successes) as successes, sum(failures) as failures,
       sum(cancelled) as cancelled, sum(prompt_tokens) as prompt_tokens,
       sum(completion_tokens) as completion_tokens, sum(tokens) as total_tokens, sum(cost) as cost,
       sum(unpriced_requests) as unpriced_requests
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date
 group by model, provider
 order by cost desc, total_tokens desc, model

-- totals_by_day --
select day, sum(requests) as requests, sum(failures) as failures, sum(tokens) as total_tokens,
       sum(cost) as cost, count(distinct user_id) as active_users
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date
 group by day
 order by day

-- error_rate_by_model --
select model, provider, sum(requests) as requests, sum(failures) as failures,
       round(sum(failures)::numeric / nullif(sum(requests), 0), 4) as error_rate
  from public.usage_daily
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
select distinct model, provider from public.usage_daily order by model, provider

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

-- quarantine_insert --
insert into public.quarantine (litellm_call_id, reason, raw_event, raw_bytes) values (%s, %s, %s, %s)
