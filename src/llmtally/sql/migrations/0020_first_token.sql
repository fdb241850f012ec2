-- llmtally 0020: time to first token. LiteLLM notes when a stream's first chunk arrived
-- (completion_start_time); the callback stores the milliseconds from the attempt's start to that chunk
-- as first_token_ms on the attempt (request_attempts: one deployment's time) and on the call
-- (request_logs: the time of the attempt that answered, taken as latency_ms is). Calls that were not
-- streamed, and streams that ended before a first chunk, have none (null, not 0). A cancelled stream
-- has the time of the first chunk it received.
--
-- The batch type gets the field, so the insert function is replaced with the one of 0016 passing it
-- through (every other line unchanged), and llmtally_ingest names it among the whole-number fields.

alter type public.llmtally_event add attribute first_token_ms integer;

alter table public.request_attempts add column first_token_ms integer check (first_token_ms >= 0);
alter table public.request_logs add column first_token_ms integer check (first_token_ms >= 0);

comment on column public.request_logs.first_token_ms is
    'Milliseconds from the start of the answering attempt to its first streamed chunk; null if not streamed.';
comment on column public.request_attempts.first_token_ms is
    'Milliseconds from the start of this attempt to its first streamed chunk; null if not streamed.';

-- The insert of 0016 with first_token_ms. create or replace keeps the grants of 0002 (service_role only).
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
               s.ordinality as ord, s.status, s.error, s.error_type, s.latency_ms, s.first_token_ms,
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
            total_cost, cost_status, cache_hit, saved_cost, usage_source, latency_ms, first_token_ms, stream,
            created_at)
        select attempt_key, call_key, litellm_call_id, trace_id, user_profile_id, end_user, model, provider,
               model_group, model_id, api_base, status, error_type, error, prompt_tokens, completion_tokens,
               tokens_used, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, total_cost,
               cost_status, cache_hit, saved_cost, usage_source, latency_ms, first_token_ms, stream, created_at
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
               max(r.first_token_ms) over best as max_first_token,
               row_number() over (partition by r.call_key order by r.created_at desc, r.seq desc) as pick
          from ranked r
         where r.rank = r.best_rank
        window best as (partition by r.call_key)
    ), logged as (
        insert into public.request_logs as l (call_key, user_profile_id, end_user, session_id, litellm_call_id,
            trace_id, model, provider, model_group, prompt_tokens, completion_tokens, tokens_used, cached_tokens,
            cache_creation_tokens, reasoning_tokens, audio_tokens, total_cost, cost_status, cache_hit, saved_cost,
            usage_source, messages, response, status, error, error_type, latency_ms, first_token_ms, stream, metadata,
            created_at, attempt_count, failed_attempts, content_truncated, content_original_bytes)
        select o.call_key, o.user_profile_id, o.end_user, o.session_id, o.litellm_call_id, o.trace_id, o.model,
               o.provider, o.model_group, o.sum_prompt, o.sum_completion, o.sum_tokens, o.sum_cached,
               o.sum_cache_creation, o.sum_reasoning, o.sum_audio, o.sum_cost,
               case when o.sum_cost is null then 'unpriced' else o.cost_status end,
               o.all_cache_hits, o.sum_saved,
               case when o.any_estimated then 'estimated' else 'provider' end,
               c.messages, c.response, o.status, o.error, o.error_type, o.max_latency, o.max_first_token,
               o.stream,
               case when legacy.flag is null then o.metadata else o.metadata - '_llmtally_content' end,
               o.first_at, o.n_attempts, o.n_failed,
               coalesce(c.content_truncated, (legacy.flag ->> 'truncated')::boolean, false),
               case when c.content_truncated then greatest(0, c.content_original_bytes)
                    when c.content_truncated is null and legacy.flag is not null
                    then greatest(0, (legacy.flag ->> 'original_bytes')::bigint) end
          from outcome o
          join pg_catalog.unnest(events) with ordinality c on c.ordinality = o.ord
          -- a writer of an earlier version passes the flag in metadata (0007): read here and removed
         cross join lateral (
                select case when pg_catalog.jsonb_typeof(o.metadata) = 'object'
                            then o.metadata -> '_llmtally_content' end as flag) legacy
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
            first_token_ms        = case when public.llmtally_status_rank(excluded.status)
                                              > public.llmtally_status_rank(l.status) then excluded.first_token_ms
                                         when public.llmtally_status_rank(excluded.status)
                                              < public.llmtally_status_rank(l.status) then l.first_token_ms
                                         else greatest(l.first_token_ms, excluded.first_token_ms) end,
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

-- The JSON entry point of 0013, with first_token_ms among the fields that must be whole numbers.
create or replace function public.llmtally_ingest(events jsonb) returns integer
    language plpgsql
    set search_path = ''
as $$
declare
    rows public.llmtally_event[];
    bad record;
begin
    if events is null or pg_catalog.jsonb_typeof(events) <> 'array' then
        raise exception 'llmtally_ingest expects a JSON array of events, not %',
            coalesce(pg_catalog.jsonb_typeof(events), 'null')
            using errcode = '22023';
    end if;
    if exists (select from pg_catalog.jsonb_array_elements(events) e where pg_catalog.jsonb_typeof(e) <> 'object') then
        raise exception 'llmtally_ingest expects every event to be a JSON object' using errcode = '22023';
    end if;
    -- Token counts are integers: a value that is not a whole number is named here, not by the cast.
    select e.ordinality as seq, f.name, e.value ->> f.name as value into bad
      from pg_catalog.jsonb_array_elements(events) with ordinality as e
     cross join (values ('prompt_tokens'), ('completion_tokens'), ('tokens_used'), ('cached_tokens'),
                        ('cache_creation_tokens'), ('reasoning_tokens'), ('audio_tokens'), ('latency_ms'),
                        ('first_token_ms')) f(name)
     where pg_catalog.jsonb_typeof(e.value -> f.name) in ('string', 'number', 'boolean', 'object', 'array')
       and (e.value ->> f.name) operator(pg_catalog.!~) '^\s*[+-]?[0-9]{1,10}\s*$'
     order by e.ordinality
     limit 1;
    if found then
        raise exception 'llmtally_ingest: event % has % = %, which is not a whole number', bad.seq, bad.name,
            pg_catalog.left(bad.value, 40)
            using errcode = '22P02';
    end if;
    rows := array(
        select pg_catalog.jsonb_populate_record(null::public.llmtally_event,
                                                e.value || pg_catalog.jsonb_build_object('seq', e.ordinality))
          from pg_catalog.jsonb_array_elements(events) with ordinality as e
         order by e.ordinality);
    select r.seq,
           case when not (r.total_cost > '-Infinity' and r.total_cost < 'Infinity') then 'total_cost'
                when not (r.saved_cost > '-Infinity' and r.saved_cost < 'Infinity') then 'saved_cost'
                else 'created_at' end as name,
           case when not (r.total_cost > '-Infinity' and r.total_cost < 'Infinity') then r.total_cost::text
                when not (r.saved_cost > '-Infinity' and r.saved_cost < 'Infinity') then r.saved_cost::text
                else r.created_at::text end as value
      into bad
      from pg_catalog.unnest(rows) r
     where not coalesce(r.total_cost > '-Infinity' and r.total_cost < 'Infinity', true)
        or not coalesce(r.saved_cost > '-Infinity' and r.saved_cost < 'Infinity', true)
        or not coalesce(pg_catalog.isfinite(r.created_at), true)
     order by r.seq
     limit 1;
    if found then
        raise exception 'llmtally_ingest: event % has a non-finite % (%)', bad.seq, bad.name, bad.value
            using errcode = '22003';
    end if;
    return public.llmtally_insert_events(rows);
end
$$;
