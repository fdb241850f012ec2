-- Named statements of the analytics data generator (bench/analytics.py). A line "-- name --" starts one.

-- setup --
-- Helper tables, outside the llmtally schema: who and what each generated row draws from.
create schema bench_gen;
create table bench_gen.models (
    idx          integer primary key,
    model        text not null,
    provider     text not null,
    input_price  numeric,            -- USD per token; NULL: a model nobody priced
    output_price numeric
);
create table bench_gen.users (
    idx       integer primary key,   -- Zipf rank: 1 is the heaviest user
    user_id   text not null,
    favourite integer not null       -- the model this user picks 80 percent of the time
);
create table bench_gen.params (
    user_bounds  float8[] not null,  -- lower bounds of each user's slice of [0, 1) (width_bucket)
    model_bounds float8[] not null,
    corpus       text not null,
    t_start      timestamptz not null,
    t_end        timestamptz not null
)

-- rows --
-- Rows first..last of request_logs. Users follow the Zipf bounds; a user calls their favourite
-- model 80 percent of the time, else any model by popularity. Time: density rising linearly over the 13
-- months (usage grows). 2 percent failures, 0.5 percent cancelled calls, content sliced from the corpus.
insert into public.request_logs (user_profile_id, end_user, session_id, litellm_call_id, call_key, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
    error, error_type, latency_ms, stream, metadata, created_at)
select u.user_id, u.user_id, x.session_id, x.call_id, x.call_id, m.model, m.provider,
       x.prompt, x.completion, x.prompt + x.completion,
       case when m.input_price is null then null
            else x.prompt * m.input_price + x.completion * m.output_price end,
       case when m.input_price is null then 'unpriced' else 'priced' end,
       jsonb_build_array(
           jsonb_build_object('role', 'system', 'content', 'You are a helpful assistant.'),
           jsonb_build_object('role', 'user', 'content', substr(p.corpus, x.off1, x.len1))),
       case x.status
            when 'success' then jsonb_build_object(
                'id', 'chatcmpl-' || x.call_id, 'object', 'chat.completion', 'model', m.model,
                'choices', jsonb_build_array(jsonb_build_object('index', 0, 'finish_reason', 'stop',
                    'message', jsonb_build_object('role', 'assistant', 'content', substr(p.corpus, x.off2, x.len2)))),
                'usage', jsonb_build_object('prompt_tokens', x.prompt, 'completion_tokens', x.completion))
            when 'cancelled' then jsonb_build_object('partial', substr(p.corpus, x.off2, x.len2 / 4))
       end,
       x.status,
       case when x.status = 'failure' then 'litellm.RateLimitError: RateLimitError: Rate limit reached for requests' end,
       case when x.status = 'failure' then 'RateLimitError' end,
       x.latency, x.stream,
       jsonb_build_object('user_profile_id', u.user_id, 'session_id', x.session_id),
       x.created_at
  from (select g.i, random() as r_user, random() as r_model, random() as r_fav, random() as r_time,
               random() as r_status, random() as r1, random() as r2, random() as r3, random() as r4,
               random() as r5
          from generate_series(%(first)s::bigint, %(last)s::bigint) as g(i)) as r
 cross join bench_gen.params as p
  join bench_gen.users as u on u.idx = width_bucket(r.r_user, p.user_bounds)
  join bench_gen.models as m
    on m.idx = case when r.r_fav < 0.8 then u.favourite else width_bucket(r.r_model, p.model_bounds) end
 cross join lateral (
        select case when r.r_status < 0.02 then 'failure' when r.r_status < 0.025 then 'cancelled'
                    else 'success' end as status,
               case when r.r_status < 0.02 then 0 else 20 + (r.r1 ^ 3 * 4000)::integer end as prompt,
               case when r.r_status < 0.02 then 0
                    when r.r_status < 0.025 then (r.r2 ^ 3 * 300)::integer
                    else 10 + (r.r2 ^ 3 * 1500)::integer end as completion,
               md5(r.i::text)::uuid::text as call_id,
               'chat-' || u.idx || '-' || (r.i / 20) as session_id,
               1 + (r.r5 * 12000)::integer as off1,
               30 + (r.r3 ^ 4 * 2500)::integer as len1,
               1 + ((1 - r.r5) * 12000)::integer as off2,
               30 + (r.r4 ^ 4 * 4000)::integer as len2,
               (150 + r.r2 * 9000)::integer as latency,
               r.r4 < 0.4 as stream,
               p.t_start + (p.t_end - p.t_start) * sqrt(r.r_time) as created_at) as x

-- rollup_add --
-- The rollup of rows after..upto, added as the insert trigger adds a batch.
insert into public.usage_daily as u (user_id, day, model, provider, requests, successes, failures, cancelled,
    prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
select user_profile_id, (created_at at time zone 'UTC')::date, model, provider,
       count(*),
       count(*) filter (where status = 'success'),
       count(*) filter (where status = 'failure'),
       count(*) filter (where status = 'cancelled'),
       sum(prompt_tokens), sum(completion_tokens), sum(tokens_used),
       coalesce(sum(total_cost), 0),
       count(*) filter (where cost_status = 'unpriced'),
       coalesce(sum(latency_ms), 0)
  from public.request_logs
 where id > %(after)s and id <= %(upto)s
 group by 1, 2, 3, 4
on conflict on constraint usage_daily_key do update set
    requests          = u.requests + excluded.requests,
    successes         = u.successes + excluded.successes,
    failures          = u.failures + excluded.failures,
    cancelled         = u.cancelled + excluded.cancelled,
    prompt_tokens     = u.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = u.completion_tokens + excluded.completion_tokens,
    tokens            = u.tokens + excluded.tokens,
    cost              = u.cost + excluded.cost,
    unpriced_requests = u.unpriced_requests + excluded.unpriced_requests,
    latency_ms_sum    = u.latency_ms_sum + excluded.latency_ms_sum

-- counters_add --
-- The counters of rows after..upto, added to the profiles as the insert trigger adds a batch.
update public.user_profiles p set
    tokens_used       = p.tokens_used + d.tokens_used,
    prompt_tokens     = p.prompt_tokens + d.prompt_tokens,
    completion_tokens = p.completion_tokens + d.completion_tokens,
    total_cost        = p.total_cost + d.total_cost,
    request_count     = p.request_count + d.request_count,
    success_count     = p.success_count + d.success_count,
    failure_count     = p.failure_count + d.failure_count,
    cancelled_count   = p.cancelled_count + d.cancelled_count,
    unpriced_count    = p.unpriced_count + d.unpriced_count,
    first_request_at  = least(p.first_request_at, d.first_at),
    last_request_at   = greatest(p.last_request_at, d.last_at)
  from (select user_profile_id,
               sum(tokens_used) as tokens_used, sum(prompt_tokens) as prompt_tokens,
               sum(completion_tokens) as completion_tokens, coalesce(sum(total_cost), 0) as total_cost,
               count(*) as request_count,
               count(*) filter (where status = 'success') as success_count,
               count(*) filter (where status = 'failure') as failure_count,
               count(*) filter (where status = 'cancelled') as cancelled_count,
               count(*) filter (where cost_status = 'unpriced') as unpriced_count,
               min(created_at) as first_at, max(created_at) as last_at
          from public.request_logs
         where id > %(after)s and id <= %(upto)s and user_profile_id is not null
         group by user_profile_id) d
 where p.user_id = d.user_profile_id

-- monthly_and_totals --
-- usage_monthly, usage_monthly_users and usage_daily_totals from usage_daily, as migrations 0004 and
-- 0008 build them (the generator writes with triggers off, so these rollups are rebuilt after each
-- growth step).
truncate public.usage_monthly, public.usage_monthly_users, public.usage_daily_totals;
insert into public.usage_monthly (user_id, month, model, provider, requests, successes, failures, cancelled,
    prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
select user_id, date_trunc('month', day)::date, model, provider, sum(requests), sum(successes), sum(failures),
       sum(cancelled), sum(prompt_tokens), sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests),
       sum(latency_ms_sum)
  from public.usage_daily
 group by 1, 2, 3, 4;
insert into public.usage_monthly_users (user_id, month, requests, successes, failures, cancelled,
    prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
select user_id, month, sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens),
       sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum)
  from public.usage_monthly
 group by 1, 2;
insert into public.usage_daily_totals (day, model, provider, requests, successes, failures, cancelled,
    prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum)
select day, model, provider, sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens),
       sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum)
  from public.usage_daily
 group by 1, 2, 3
