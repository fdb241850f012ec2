-- Named queries, loaded once by llmtally.db.queries. A line "-- name --" starts a query.

-- create_stage --
-- A batch of events lands here by COPY, then moves to request_logs in one statement.
create temp table llmtally_stage (
    seq               integer not null,
    user_profile_id   text,
    end_user          text,
    session_id        text,
    litellm_call_id   text not null,
    model             text not null,
    provider          text not null,
    prompt_tokens     integer not null,
    completion_tokens integer not null,
    tokens_used       integer not null,
    total_cost        numeric,
    cost_status       text not null,
    messages          jsonb,
    response          jsonb,
    status            text not null,
    error             text,
    error_type        text,
    latency_ms        integer,
    stream            boolean not null,
    metadata          jsonb not null,
    created_at        timestamptz not null
) on commit drop

-- copy_stage --
copy llmtally_stage (seq, user_profile_id, end_user, session_id, litellm_call_id, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
    error, error_type, latency_ms, stream, metadata, created_at) from stdin

-- insert_from_stage --
-- User: the event's own user id, else the session map (by session id, then by the raw `user`).
-- Cost: a custom price in model_prices wins over what LiteLLM reported.
insert into public.request_logs (user_profile_id, end_user, session_id, litellm_call_id, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
    error, error_type, latency_ms, stream, metadata, created_at)
select coalesce(s.user_profile_id, by_session.user_id, by_end_user.user_id),
       s.end_user, s.session_id, s.litellm_call_id, s.model, s.provider,
       s.prompt_tokens, s.completion_tokens, s.tokens_used,
       case when price.model is null then s.total_cost
            else s.prompt_tokens * price.input_cost_per_token + s.completion_tokens * price.output_cost_per_token end,
       case when price.model is null then s.cost_status else 'custom' end,
       s.messages, s.response, s.status, s.error, s.error_type, s.latency_ms, s.stream, s.metadata, s.created_at
  from llmtally_stage s
  left join public.sessions by_session on by_session.session_id = s.session_id and s.user_profile_id is null
  left join public.sessions by_end_user on by_end_user.session_id = s.end_user and s.user_profile_id is null
  left join lateral (
        select mp.model, mp.input_cost_per_token, mp.output_cost_per_token
          from public.model_prices mp
         where mp.model in (s.model, s.provider || '/' || s.model)
         order by mp.model = s.model desc
         limit 1) price on true
 order by s.seq
on conflict (litellm_call_id) do nothing

-- upsert_user --
insert into public.user_profiles as p (user_id, email, full_name, provider, last_seen_at)
values (%(user_id)s, %(email)s, %(full_name)s, %(provider)s, now())
on conflict (user_id) do update set
    email        = coalesce(excluded.email, p.email),
    full_name    = coalesce(excluded.full_name, p.full_name),
    provider     = coalesce(excluded.provider, p.provider),
    last_seen_at = now()

-- link_session --
insert into public.sessions as s (session_id, user_id)
values (%(session_id)s, %(user_id)s)
on conflict (session_id) do update set user_id = excluded.user_id, last_seen_at = now()

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
select user_id, month, requests, successes, failures, cancelled, prompt_tokens, completion_tokens,
       total_tokens, total_cost, model_breakdown, provider_breakdown
  from public.monthly_token_usage
 where user_id = %(user_id)s
   and month >= %(first_month)s::date
 order by month desc

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
