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
