-- Custom prices for cached input and cache writes, priced the way LiteLLM prices them; an index of
-- the calls whose usage was estimated; a failed attempt no longer settles its call's reservation.
--
-- LiteLLM counts cache reads and cache writes inside prompt_tokens (OpenAI's cached_tokens, Anthropic's
-- cache_read_input_tokens and cache_creation_input_tokens). A custom price now has a price for each:
-- uncached input x input + cache reads x cache_read + cache writes x cache_creation + completion x
-- output. A price left NULL is the input price, as before this migration, so existing custom prices
-- keep the costs they gave. The formula lives in one function, used by the insert and by
-- `llmtally prices reprice`.

alter table public.model_prices
    add column cache_read_cost_per_token     numeric check (cache_read_cost_per_token >= 0),
    add column cache_creation_cost_per_token numeric check (cache_creation_cost_per_token >= 0);
comment on column public.model_prices.cache_read_cost_per_token is
    'USD per cached input token (a cache read); NULL: the input price.';
comment on column public.model_prices.cache_creation_cost_per_token is
    'USD per input token written to the provider''s cache; NULL: the input price.';

create function public.llmtally_custom_cost(price public.model_prices, prompt_tokens bigint,
                                            completion_tokens bigint, cached_tokens bigint,
                                            cache_creation_tokens bigint) returns numeric
    language sql
    immutable
    set search_path = ''
return greatest(prompt_tokens - cached_tokens - cache_creation_tokens, 0) * price.input_cost_per_token
       + least(cached_tokens, prompt_tokens)
         * coalesce(price.cache_read_cost_per_token, price.input_cost_per_token)
       + least(cache_creation_tokens, greatest(prompt_tokens - cached_tokens, 0))
         * coalesce(price.cache_creation_cost_per_token, price.input_cost_per_token)
       + completion_tokens * price.output_cost_per_token;
comment on function public.llmtally_custom_cost(public.model_prices, bigint, bigint, bigint, bigint) is
    'The cost of one usage under a custom price: cache reads and writes are part of prompt_tokens.';
revoke all on function public.llmtally_custom_cost(public.model_prices, bigint, bigint, bigint, bigint)
    from public, anon, authenticated;
grant execute on function public.llmtally_custom_cost(public.model_prices, bigint, bigint, bigint, bigint)
    to service_role;

-- The cost of calls whose usage was estimated (the provider sent none), per period: analytics and the
-- dashboard tell that spend apart. Such calls are a small share where streams ask for usage.
create index request_logs_estimated_idx on public.request_logs (created_at) where usage_source = 'estimated';

-- ---------------------------------------------------------------------------------------------
-- The insert of 0009, its custom cost now from llmtally_custom_cost. The content (messages and
-- response) no longer goes through the sort and the two windows that pick each call's outcome: only
-- the event's position does, and the content is joined back for the row that is written.
-- ---------------------------------------------------------------------------------------------
create or replace function public.llmtally_insert_events(events public.llmtally_event[]) returns integer
    language plpgsql
    set search_path = ''
as $$
declare
    added_count integer;
begin
    -- A call's row may move between rollup keys (its failure's day and model, its success's): the
    -- UPDATE triggers then lock rollup rows in another order than the INSERT triggers. Writers first
    -- take one lock per user of the batch (anonymous included), in sorted order, so they cannot deadlock.
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('llmtally.calls:' || u.user_id, 0))
       from (select distinct coalesce(nullif(s.user_profile_id, ''), by_session.user_id, by_end_user.user_id, '')
                        as user_id
               from pg_catalog.unnest(events) s
               left join public.sessions by_session
                      on by_session.session_id = s.session_id and nullif(s.user_profile_id, '') is null
               left join public.sessions by_end_user
                      on by_end_user.session_id = s.end_user and nullif(s.user_profile_id, '') is null
              order by 1) u;

    with resolved as (
        select distinct on (k.attempt_key)
               s.seq, k.call_key, k.attempt_key,
               coalesce(nullif(s.user_profile_id, ''), by_session.user_id, by_end_user.user_id) as user_profile_id,
               s.end_user, s.session_id, s.litellm_call_id, s.trace_id, s.model, coalesce(s.provider, 'unknown') as provider,
               s.model_group, s.model_id, s.api_base,
               coalesce(s.prompt_tokens, 0) as prompt_tokens, coalesce(s.completion_tokens, 0) as completion_tokens,
               coalesce(s.tokens_used, 0) as tokens_used, coalesce(s.cached_tokens, 0) as cached_tokens,
               coalesce(s.cache_creation_tokens, 0) as cache_creation_tokens,
               coalesce(s.reasoning_tokens, 0) as reasoning_tokens, coalesce(s.audio_tokens, 0) as audio_tokens,
               case when price.model is null or coalesce(s.cache_hit, false) then s.total_cost
                    else public.llmtally_custom_cost(price.price_row, coalesce(s.prompt_tokens, 0),
                                                     coalesce(s.completion_tokens, 0), coalesce(s.cached_tokens, 0),
                                                     coalesce(s.cache_creation_tokens, 0)) end as total_cost,
               case when price.model is not null and not coalesce(s.cache_hit, false) then 'custom'
                    else coalesce(s.cost_status, case when s.total_cost is null then 'unpriced' else 'priced' end)
               end as cost_status,
               s.ordinality as ord, s.status, s.error, s.error_type, s.latency_ms,
               coalesce(s.stream, false) as stream, coalesce(s.metadata, '{}'::jsonb) as metadata,
               k.created_at, coalesce(s.cache_hit, false) as cache_hit, s.saved_cost,
               coalesce(s.usage_source, 'provider') as usage_source,
               public.llmtally_status_rank(s.status) as rank
          from pg_catalog.unnest(events) with ordinality s
         cross join lateral (
                select coalesce(nullif(s.call_key, ''), s.litellm_call_id) as call_key,
                       coalesce(s.created_at, pg_catalog.now()) as created_at) c
         cross join lateral (
                select c.call_key,
                       coalesce(nullif(s.attempt_key, ''),
                                s.litellm_call_id || ':' || coalesce(s.status, '') || ':'
                                || extract(epoch from c.created_at)::text)
                           as attempt_key,
                       c.created_at) k
          left join public.sessions by_session
                 on by_session.session_id = s.session_id and nullif(s.user_profile_id, '') is null
          left join public.sessions by_end_user
                 on by_end_user.session_id = s.end_user and nullif(s.user_profile_id, '') is null
          left join lateral (
                select mp.model, mp as price_row
                  from public.model_prices mp
                 where mp.model in (s.model, coalesce(s.provider, 'unknown') || '/' || s.model)
                 order by mp.model = s.model desc
                 limit 1) price on true
         order by k.attempt_key, s.seq
    ), added as (
        insert into public.request_attempts (attempt_key, call_key, litellm_call_id, trace_id, user_profile_id,
            end_user, model, provider, model_group, model_id, api_base, status, error_type, error, prompt_tokens,
            completion_tokens, tokens_used, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens,
            total_cost, cost_status, cache_hit, saved_cost, usage_source, latency_ms, stream, created_at)
        select attempt_key, call_key, litellm_call_id, trace_id, user_profile_id, end_user, model, provider,
               model_group, model_id, api_base, status, error_type, error, prompt_tokens, completion_tokens,
               tokens_used, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, total_cost,
               cost_status, cache_hit, saved_cost, usage_source, latency_ms, stream, created_at
          from resolved
         order by attempt_key
        on conflict (attempt_key) do nothing
        returning attempt_key
    ), ranked as (
        select r.*,
               max(r.rank) over per_call as best_rank,
               count(*) over per_call as n_attempts,
               count(*) filter (where r.status = 'failure') over per_call as n_failed,
               min(r.created_at) over per_call as first_at
          from resolved r
          join added a on a.attempt_key = r.attempt_key
        window per_call as (partition by r.call_key)
    ), outcome as (
        select r.*,
               sum(r.prompt_tokens) over best as sum_prompt,
               sum(r.completion_tokens) over best as sum_completion,
               sum(r.tokens_used) over best as sum_tokens,
               sum(r.cached_tokens) over best as sum_cached,
               sum(r.cache_creation_tokens) over best as sum_cache_creation,
               sum(r.reasoning_tokens) over best as sum_reasoning,
               sum(r.audio_tokens) over best as sum_audio,
               case when bool_and(r.total_cost is not null) over best then sum(r.total_cost) over best end as sum_cost,
               sum(r.saved_cost) over best as sum_saved,
               bool_and(r.cache_hit) over best as all_cache_hits,
               bool_or(r.usage_source = 'estimated') over best as any_estimated,
               max(r.latency_ms) over best as max_latency,
               row_number() over (partition by r.call_key order by r.created_at desc, r.seq desc) as pick
          from ranked r
         where r.rank = r.best_rank
        window best as (partition by r.call_key)
    ), logged as (
        insert into public.request_logs as l (call_key, user_profile_id, end_user, session_id, litellm_call_id,
            trace_id, model, provider, model_group, prompt_tokens, completion_tokens, tokens_used, cached_tokens,
            cache_creation_tokens, reasoning_tokens, audio_tokens, total_cost, cost_status, cache_hit, saved_cost,
            usage_source, messages, response, status, error, error_type, latency_ms, stream, metadata, created_at,
            attempt_count, failed_attempts)
        select o.call_key, o.user_profile_id, o.end_user, o.session_id, o.litellm_call_id, o.trace_id, o.model,
               o.provider, o.model_group, o.sum_prompt, o.sum_completion, o.sum_tokens, o.sum_cached,
               o.sum_cache_creation, o.sum_reasoning, o.sum_audio, o.sum_cost,
               case when o.sum_cost is null then 'unpriced' else o.cost_status end,
               o.all_cache_hits, o.sum_saved,
               case when o.any_estimated then 'estimated' else 'provider' end,
               c.messages, c.response, o.status, o.error, o.error_type, o.max_latency, o.stream, o.metadata,
               o.first_at, o.n_attempts, o.n_failed
          from outcome o
          join pg_catalog.unnest(events) with ordinality c on c.ordinality = o.ord
         where o.pick = 1
         order by o.call_key
        on conflict (call_key) do update set
            -- better: the new attempts' outcome replaces the row's; equal: usage adds up; worse: kept
            user_profile_id       = coalesce(l.user_profile_id, excluded.user_profile_id),
            end_user              = coalesce(l.end_user, excluded.end_user),
            session_id            = coalesce(l.session_id, excluded.session_id),
            trace_id              = coalesce(l.trace_id, excluded.trace_id),
            litellm_call_id       = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.litellm_call_id else l.litellm_call_id end,
            model                 = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.model else l.model end,
            provider              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.provider else l.provider end,
            model_group           = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.model_group else coalesce(l.model_group, excluded.model_group) end,
            prompt_tokens         = public.llmtally_combine(l.status, excluded.status, l.prompt_tokens,
                                                            excluded.prompt_tokens),
            completion_tokens     = public.llmtally_combine(l.status, excluded.status, l.completion_tokens,
                                                            excluded.completion_tokens),
            tokens_used           = public.llmtally_combine(l.status, excluded.status, l.tokens_used,
                                                            excluded.tokens_used),
            cached_tokens         = public.llmtally_combine(l.status, excluded.status, l.cached_tokens,
                                                            excluded.cached_tokens),
            cache_creation_tokens = public.llmtally_combine(l.status, excluded.status, l.cache_creation_tokens,
                                                            excluded.cache_creation_tokens),
            reasoning_tokens      = public.llmtally_combine(l.status, excluded.status, l.reasoning_tokens,
                                                            excluded.reasoning_tokens),
            audio_tokens          = public.llmtally_combine(l.status, excluded.status, l.audio_tokens,
                                                            excluded.audio_tokens),
            total_cost            = public.llmtally_combine(l.status, excluded.status, l.total_cost,
                                                            excluded.total_cost),
            cost_status           = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.cost_status
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.cost_status
                                         when l.total_cost is null or excluded.total_cost is null then 'unpriced'
                                         else l.cost_status end,
            cache_hit             = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.cache_hit
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.cache_hit
                                         else l.cache_hit and excluded.cache_hit end,
            saved_cost            = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.saved_cost
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.saved_cost
                                         when l.saved_cost is null then excluded.saved_cost
                                         else l.saved_cost + coalesce(excluded.saved_cost, 0) end,
            usage_source          = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.usage_source
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.usage_source
                                         when 'estimated' in (l.usage_source, excluded.usage_source) then 'estimated'
                                         else 'provider' end,
            messages              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then coalesce(excluded.messages, l.messages)
                                         else coalesce(l.messages, excluded.messages) end,
            response              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then coalesce(excluded.response, l.response)
                                         else coalesce(l.response, excluded.response) end,
            status                = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.status else l.status end,
            error                 = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.error else l.error end,
            error_type            = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.error_type else l.error_type end,
            latency_ms            = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.latency_ms
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.latency_ms
                                         else greatest(l.latency_ms, excluded.latency_ms) end,
            stream                = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.stream else l.stream end,
            metadata              = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status)
                                         then excluded.metadata else l.metadata end,
            content_truncated     = l.content_truncated or excluded.content_truncated,
            content_original_bytes = greatest(l.content_original_bytes, excluded.content_original_bytes),
            created_at            = least(l.created_at, excluded.created_at),
            attempt_count         = l.attempt_count + excluded.attempt_count,
            failed_attempts       = l.failed_attempts + excluded.failed_attempts
        returning 1
    )
    select count(*) into added_count from added;
    return added_count;
end
$$;
comment on function public.llmtally_insert_events(public.llmtally_event[]) is
    'Record a batch of usage events as attempts of logical calls (idempotent per attempt); returns new attempts.';

-- ---------------------------------------------------------------------------------------------
-- Budgets: a failed attempt no longer settles its call's reservation
-- ---------------------------------------------------------------------------------------------
-- With retries and fallbacks, LiteLLM reports each failed attempt under the call's id before the
-- attempt that is billed. Settling at the first failure released the reservation while the call
-- was still running, and other calls could take that headroom: the budget could be overspent.
-- Now the row of a success or a cancellation settles; a call that fails for good is settled by its
-- caller (llmtally_settle_failed, which the Budgets wrapper calls when LiteLLM raises), else its
-- reservation expires with its TTL.
create or replace function public.llmtally_settle_budgets() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
declare
    u text;
begin
    -- Lock each user concerned, in sorted order (no deadlock between writers): alerts below then
    -- see every earlier settlement of the same user, and no reservation of theirs runs meanwhile.
    for u in select x.user_id
               from (select n.user_profile_id as user_id from new_rows n where n.user_profile_id is not null
                     union
                     select rv.user_id from public.budget_reservations rv
                       join new_rows n on rv.litellm_call_id in (n.litellm_call_id, n.call_key)) x
              order by 1 loop
        perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('llmtally.limits:' || u, 0));
    end loop;

    -- Only a billed outcome settles: a failed attempt may be retried or fall back under the same call,
    -- so its reservation keeps the headroom until the call's success (or llmtally_settle_failed).
    delete from public.budget_reservations rv
     using new_rows n where rv.litellm_call_id in (n.litellm_call_id, n.call_key) and n.status <> 'failure';
    update public.rate_limit_log l set tokens = n.tokens_used
      from new_rows n where l.litellm_call_id in (n.litellm_call_id, n.call_key);

    if exists (select from public.budgets) then
        -- The same computation as llmtally_budget_usage (spent only), for every user of the batch
        -- in one statement: one index range scan per user and budget, no per-user function call.
        insert into public.budget_alerts (user_id, budget_id, period, period_start, threshold, limit_usd,
                                          limit_tokens, spent_usd, spent_tokens, hard)
        select b.user_id, b.id, b.period, nullif(per.starts, '-infinity'), t.threshold, b.limit_usd,
               b.limit_tokens, s.usd, s.tokens, b.hard
          from (select distinct on (u.user_id, x.period) u.user_id, x.*
                  from (select distinct n.user_profile_id as user_id
                          from new_rows n where n.user_profile_id is not null) u
                  join public.budgets x on x.user_profile_id = u.user_id or x.user_profile_id is null
                 order by u.user_id, x.period, x.user_profile_id nulls last) b
         cross join lateral (
                select case b.period when 'daily' then 'day' when 'weekly' then 'week'
                                     when 'monthly' then 'month' end
            ) unit(name)
         cross join lateral (
                select case when unit.name is null then '-infinity'::timestamptz
                            else pg_catalog.date_trunc(unit.name, pg_catalog.now(), b.timezone) end,
                       case when unit.name is null then 'infinity'::timestamptz
                            else (pg_catalog.date_trunc(unit.name, pg_catalog.now() at time zone b.timezone)
                                  + ('1 ' || unit.name)::interval) at time zone b.timezone end
            ) per(starts, ends)
         cross join lateral (
                select coalesce(sum(x.usd), 0)::numeric, coalesce(sum(x.tokens), 0)::bigint
                  from (select l.total_cost as usd, l.tokens_used::bigint as tokens
                          from public.request_logs l
                         where unit.name is not null and l.user_profile_id = b.user_id
                           and l.created_at >= per.starts and l.created_at < per.ends
                        union all
                        select p.total_cost, p.tokens_used
                          from public.user_profiles p
                         where unit.name is null and p.user_id = b.user_id) x
            ) s(usd, tokens)
         cross join lateral pg_catalog.unnest(b.thresholds) t(threshold)
         where greatest(s.usd / nullif(b.limit_usd, 0), s.tokens::numeric / nullif(b.limit_tokens, 0)) >= t.threshold
         order by 1, 2, 5
        on conflict on constraint budget_alerts_once do nothing;
    end if;
    return null;
end
$$;

create function public.llmtally_settle_failed(p_call_id text) returns boolean
    language sql
    security definer
    set search_path = ''
as $$
    with gone as (delete from public.budget_reservations rv where rv.litellm_call_id = p_call_id returning 1)
    select exists (select from gone);
$$;
comment on function public.llmtally_settle_failed(text) is
    'Drop the reservation of a call that failed for good (it stays in the rate-limit window).';
revoke all on function public.llmtally_settle_failed(text) from public, anon, authenticated;
grant execute on function public.llmtally_settle_failed(text) to service_role;
