-- The same questions as llmtally's analytics, answered the original way: aggregating request_logs on
-- demand (what the original views did), with filters an index can serve.

-- user_analytics --
select p.user_id, p.email, p.full_name, p.provider,
       count(r.id) as total_requests,
       count(r.id) filter (where r.status = 'success') as successful_requests,
       count(r.id) filter (where r.status = 'failure') as failed_requests,
       count(r.id) filter (where r.status = 'cancelled') as cancelled_requests,
       round((count(r.id) filter (where r.status = 'failure'))::numeric / nullif(count(r.id), 0), 4) as error_rate,
       coalesce(sum(r.prompt_tokens), 0) as prompt_tokens,
       coalesce(sum(r.completion_tokens), 0) as completion_tokens,
       coalesce(sum(r.tokens_used), 0) as total_tokens,
       coalesce(sum(r.total_cost), 0) as total_cost,
       count(r.id) filter (where r.cost_status = 'unpriced') as unpriced_requests,
       array_remove(array_agg(distinct r.model), null) as models_used,
       min(r.created_at) as first_request_at, max(r.created_at) as last_request_at
  from public.user_profiles p
  left join public.request_logs r on r.user_profile_id = p.user_id
 where p.user_id = %(user_id)s
 group by p.user_id

-- user_breakdown_by_model --
select model, provider, count(*) as requests,
       count(*) filter (where status = 'success') as successes,
       count(*) filter (where status = 'failure') as failures,
       count(*) filter (where status = 'cancelled') as cancelled,
       sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
       sum(tokens_used) as total_tokens, coalesce(sum(total_cost), 0) as cost,
       count(*) filter (where cost_status = 'unpriced') as unpriced_requests
  from public.request_logs
 where user_profile_id = %(user_id)s
 group by model, provider
 order by cost desc, total_tokens desc, model

-- user_monthly --
with m as (
    select date_trunc('month', created_at at time zone 'UTC')::date as month, model, provider,
           count(*) as requests,
           count(*) filter (where status = 'success') as successes,
           count(*) filter (where status = 'failure') as failures,
           count(*) filter (where status = 'cancelled') as cancelled,
           sum(prompt_tokens) as prompt_tokens, sum(completion_tokens) as completion_tokens,
           sum(tokens_used) as tokens, coalesce(sum(total_cost), 0) as cost
      from public.request_logs
     where user_profile_id = %(user_id)s and created_at >= %(first_month)s::timestamptz
     group by 1, 2, 3
)
select m1.month, sum(m1.requests) as requests, sum(m1.successes) as successes, sum(m1.failures) as failures,
       sum(m1.cancelled) as cancelled, sum(m1.prompt_tokens) as prompt_tokens,
       sum(m1.completion_tokens) as completion_tokens, sum(m1.tokens) as total_tokens, sum(m1.cost) as total_cost,
       (select jsonb_object_agg(model, jsonb_build_object('requests', r, 'tokens', t, 'cost', c))
          from (select model, sum(requests) as r, sum(tokens) as t, sum(cost) as c
                  from m as m2 where m2.month = m1.month group by model) as by_model) as model_breakdown,
       (select jsonb_object_agg(provider, jsonb_build_object('requests', r, 'tokens', t, 'cost', c))
          from (select provider, sum(requests) as r, sum(tokens) as t, sum(cost) as c
                  from m as m3 where m3.month = m1.month group by provider) as by_provider) as provider_breakdown
  from m as m1
 group by m1.month
 order by m1.month desc

-- top_users --
select r.user_profile_id as user_id, p.email, p.full_name, count(*) as requests, sum(r.tokens_used) as total_tokens,
       coalesce(sum(r.total_cost), 0) as cost, count(*) filter (where r.status = 'failure') as failures
  from public.request_logs r
  join public.user_profiles p on p.user_id = r.user_profile_id
 where r.created_at >= %(since)s::timestamptz and r.created_at < %(until)s::timestamptz
 group by r.user_profile_id, p.email, p.full_name
 order by cost desc, total_tokens desc, r.user_profile_id
 limit %(limit)s

-- cost_by_model_by_day --
select (created_at at time zone 'UTC')::date as day, model, provider, count(*) as requests,
       sum(tokens_used) as tokens, coalesce(sum(total_cost), 0) as cost
  from public.request_logs
 where created_at >= %(since)s::timestamptz and created_at < %(until)s::timestamptz
 group by 1, 2, 3
 order by 1, 2, 3

-- error_rate_by_model --
select model, provider, count(*) as requests, count(*) filter (where status = 'failure') as failures,
       round((count(*) filter (where status = 'failure'))::numeric / nullif(count(*), 0), 4) as error_rate
  from public.request_logs
 where created_at >= %(since)s::timestamptz and created_at < %(until)s::timestamptz
 group by model, provider
 order by error_rate desc nulls last, requests desc, model

-- Before migration 0004: the same answers from usage_daily alone (llmtally's queries until then),
-- to show what the monthly and all-users rollups buy.

-- before_user_breakdown_by_model --
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

-- before_user_monthly --
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

-- before_top_users --
select d.user_id, p.email, p.full_name, sum(d.requests) as requests, sum(d.tokens) as total_tokens,
       sum(d.cost) as cost, sum(d.failures) as failures
  from public.usage_daily d
  join public.user_profiles p on p.user_id = d.user_id
 where d.day >= %(since)s::date and d.day < %(until)s::date
 group by d.user_id, p.email, p.full_name
 order by cost desc, total_tokens desc, d.user_id
 limit %(limit)s

-- previous_top_users --
-- llmtally's query from migration 0004 to 0008: one usage_monthly row per user and model of the whole
-- months, summed per user after the join with user_profiles.
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

-- before_cost_by_model_by_day --
select day, model, provider, sum(requests) as requests, sum(tokens) as tokens, sum(cost) as cost
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date
 group by 1, 2, 3
 order by 1, 2, 3

-- before_error_rate_by_model --
select model, provider, sum(requests) as requests, sum(failures) as failures,
       round(sum(failures)::numeric / nullif(sum(requests), 0), 4) as error_rate
  from public.usage_daily
 where day >= %(since)s::date and day < %(until)s::date
 group by model, provider
 order by error_rate desc nulls last, requests desc, model
