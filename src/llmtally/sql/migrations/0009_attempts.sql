-- llmtally 0009: logical calls and their attempts, cache hits, where usage came from, every token type.
--
-- LiteLLM gives every attempt of one logical call (retries, fallbacks) the same litellm_call_id in the
-- Proxy, with SDK fallbacks=, with a Router given the caller's id, and in Budgets.acompletion; a Router
-- left to make its own ids gives each attempt its own id and the same trace id. request_logs now holds
-- one row per logical call, keyed by call_key (the trace id LiteLLM was given, else the litellm_call_id),
-- and request_attempts one row per attempt, keyed by attempt_key (the call id, status and start time of
-- the attempt: a replayed event finds its attempt and changes nothing).
--
-- The call's row holds its outcome: the best status of its attempts (success > cancelled > failure)
-- and the usage and cost of the attempts with that status (what was billed), attempt_count and
-- failed_attempts. A success arriving after a failure of the same call, in any order and from any
-- process, updates the row (INSERT ... ON CONFLICT (call_key) DO UPDATE, which locks the row: the
-- second writer combines with the first one's committed row), and the statement-level UPDATE triggers
-- move counters and rollups from the failure to the success exactly.
--
-- New measures, on request_logs, request_attempts, user_profiles and every rollup: attempts and failed
-- attempts, cache hits (cost as LiteLLM reported it: 0, and the saved cost), estimated usage (a stream
-- without a usage chunk, a cancelled stream: LiteLLM's tokenizer, not the provider), cached input,
-- cache creation, reasoning and audio tokens.
--
-- The backfill treats every existing row as a logical call of one attempt (its call_key is its
-- litellm_call_id) and derives the new rollup measures from the old ones; the rest start at 0.

-- Backfills below write tables with deferred foreign keys, which are then altered: check keys at once.
set constraints all immediate;

-- ---------------------------------------------------------------------------------------------
-- request_logs: one row per logical call
-- ---------------------------------------------------------------------------------------------
alter table public.request_logs
    add column call_key              text,
    add column trace_id              text,
    add column model_group           text,
    add column attempt_count         integer not null default 1 check (attempt_count >= 1),
    add column failed_attempts       integer not null default 0 check (failed_attempts >= 0),
    add column cache_hit             boolean not null default false,
    add column saved_cost            numeric check (saved_cost >= 0 and saved_cost < 'Infinity'),
    add column usage_source          text not null default 'provider'
                                         check (usage_source in ('provider', 'estimated')),
    add column cached_tokens         integer not null default 0 check (cached_tokens >= 0),
    add column cache_creation_tokens integer not null default 0 check (cache_creation_tokens >= 0),
    add column reasoning_tokens      integer not null default 0 check (reasoning_tokens >= 0),
    add column audio_tokens          integer not null default 0 check (audio_tokens >= 0),
    add constraint request_logs_attempts_check check (failed_attempts <= attempt_count);

-- The counters and rollups already hold these rows, and the new measures are backfilled from them
-- below: no trigger runs for this rewrite.
alter table public.request_logs disable trigger user;
update public.request_logs set call_key = litellm_call_id, failed_attempts = (status = 'failure')::integer;
alter table public.request_logs enable trigger user;

alter table public.request_logs
    alter column call_key set not null,
    add constraint request_logs_call_key_key unique (call_key),
    drop constraint request_logs_litellm_call_id_key;
create index request_logs_litellm_call_id_idx on public.request_logs (litellm_call_id);

-- A row written without a call_key (by hand, or by an older writer's SQL) is its own call.
create function public.llmtally_default_call_key() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    new.call_key := new.litellm_call_id;
    return new;
end
$$;
comment on function public.llmtally_default_call_key() is 'A request_logs row without a call_key is its own call.';
revoke all on function public.llmtally_default_call_key() from public, anon, authenticated;

create trigger request_logs_default_call_key
    before insert on public.request_logs
    for each row
    when (new.call_key is null)
    execute function public.llmtally_default_call_key();

comment on column public.request_logs.call_key is
    'The logical call: the trace id LiteLLM was given (Router, Proxy), else the litellm_call_id. Unique.';
comment on column public.request_logs.litellm_call_id is
    'The litellm_call_id of the attempt that gave the call''s outcome (with a Router''s own ids, the billed one).';
comment on column public.request_logs.attempt_count is 'Attempts recorded for this call (retries and fallbacks + 1).';
comment on column public.request_logs.failed_attempts is 'Attempts of this call that failed.';
comment on column public.request_logs.cache_hit is 'Served from LiteLLM''s cache: cost as LiteLLM reported it (0).';
comment on column public.request_logs.saved_cost is 'What a cache hit would have cost (LiteLLM''s saved_cache_cost).';
comment on column public.request_logs.usage_source is
    'provider: the provider''s usage; estimated: LiteLLM''s tokenizer (stream without usage, cancelled call).';
comment on table public.request_logs is
    'The ledger: one row per logical LLM call (call_key), with the outcome and billed usage of its attempts.';

-- ---------------------------------------------------------------------------------------------
-- request_attempts: every attempt of every call
-- ---------------------------------------------------------------------------------------------
create table public.request_attempts (
    id                    bigint generated always as identity primary key,
    attempt_key           text not null unique,
    call_key              text not null references public.request_logs (call_key) on delete cascade
                              deferrable initially deferred,
    litellm_call_id       text not null,
    trace_id              text,
    user_profile_id       text references public.user_profiles (user_id) on delete set null
                              deferrable initially deferred,
    end_user              text,
    model                 text not null,
    provider              text not null default 'unknown',
    model_group           text,
    model_id              text,
    api_base              text,
    status                text not null check (status in ('success', 'failure', 'cancelled')),
    error_type            text,
    error                 text,
    prompt_tokens         integer not null default 0 check (prompt_tokens >= 0),
    completion_tokens     integer not null default 0 check (completion_tokens >= 0),
    tokens_used           integer not null default 0 check (tokens_used >= 0),
    cached_tokens         integer not null default 0 check (cached_tokens >= 0),
    cache_creation_tokens integer not null default 0 check (cache_creation_tokens >= 0),
    reasoning_tokens      integer not null default 0 check (reasoning_tokens >= 0),
    audio_tokens          integer not null default 0 check (audio_tokens >= 0),
    total_cost            numeric check (total_cost >= 0),
    cost_status           text not null check (cost_status in ('priced', 'recomputed', 'unpriced', 'custom')),
    cache_hit             boolean not null default false,
    saved_cost            numeric check (saved_cost >= 0 and saved_cost < 'Infinity'),
    usage_source          text not null default 'provider' check (usage_source in ('provider', 'estimated')),
    latency_ms            integer check (latency_ms >= 0),
    stream                boolean not null default false,
    created_at            timestamptz not null default now(),
    check ((cost_status = 'unpriced') = (total_cost is null))
);
create index request_attempts_call_idx on public.request_attempts (call_key, created_at);
create index request_attempts_user_created_idx on public.request_attempts (user_profile_id, created_at desc);
create index request_attempts_created_idx on public.request_attempts (created_at);
comment on table public.request_attempts is
    'Every attempt (retry, fallback) of every call in request_logs, with the deployment tried and its outcome.';
comment on column public.request_attempts.attempt_key is
    'The attempt''s identity: litellm_call_id, status and start time. A replay finds it and changes nothing.';
comment on column public.request_attempts.api_base is 'Host (and port) of the deployment''s api_base, no path.';

insert into public.request_attempts (attempt_key, call_key, litellm_call_id, user_profile_id, end_user, model,
    provider, status, error_type, error, prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status,
    latency_ms, stream, created_at)
select litellm_call_id || ':migrated', call_key, litellm_call_id, user_profile_id, end_user, model, provider, status,
       error_type, error, prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, latency_ms, stream,
       created_at
  from public.request_logs;

-- ---------------------------------------------------------------------------------------------
-- The new measures on the counters and the rollups
-- ---------------------------------------------------------------------------------------------
alter table public.user_profiles
    add column attempt_count         bigint  not null default 0 check (attempt_count >= 0),
    add column failed_attempt_count  bigint  not null default 0 check (failed_attempt_count >= 0),
    add column cache_hit_count       bigint  not null default 0 check (cache_hit_count >= 0),
    add column estimated_count       bigint  not null default 0 check (estimated_count >= 0),
    add column cached_tokens         bigint  not null default 0 check (cached_tokens >= 0),
    add column cache_creation_tokens bigint  not null default 0 check (cache_creation_tokens >= 0),
    add column reasoning_tokens      bigint  not null default 0 check (reasoning_tokens >= 0),
    add column audio_tokens          bigint  not null default 0 check (audio_tokens >= 0),
    add column saved_cost            numeric not null default 0 check (saved_cost >= 0);
update public.user_profiles set attempt_count = request_count, failed_attempt_count = failure_count
 where request_count > 0;

do $$
declare
    t text;
begin
    foreach t in array array['usage_daily', 'usage_monthly', 'usage_daily_totals', 'usage_monthly_users'] loop
        execute format($f$
            alter table public.%1$I
                add column attempts              bigint  not null default 0 check (attempts >= 0),
                add column failed_attempts       bigint  not null default 0 check (failed_attempts >= 0),
                add column cache_hits            bigint  not null default 0 check (cache_hits >= 0),
                add column estimated_requests    bigint  not null default 0 check (estimated_requests >= 0),
                add column cached_tokens         bigint  not null default 0 check (cached_tokens >= 0),
                add column cache_creation_tokens bigint  not null default 0 check (cache_creation_tokens >= 0),
                add column reasoning_tokens      bigint  not null default 0 check (reasoning_tokens >= 0),
                add column audio_tokens          bigint  not null default 0 check (audio_tokens >= 0),
                add column saved_cost            numeric not null default 0 check (saved_cost >= 0)
            $f$, t);
        execute format('update public.%1$I set attempts = requests, failed_attempts = failures where requests > 0', t);
    end loop;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The writers' event type gains the new fields (appended: the writers name them)
-- ---------------------------------------------------------------------------------------------
alter type public.llmtally_event
    add attribute call_key              text,
    add attribute attempt_key           text,
    add attribute trace_id              text,
    add attribute model_group           text,
    add attribute model_id              text,
    add attribute api_base              text,
    add attribute cache_hit             boolean,
    add attribute saved_cost            numeric,
    add attribute usage_source          text,
    add attribute cached_tokens         integer,
    add attribute cache_creation_tokens integer,
    add attribute reasoning_tokens      integer,
    add attribute audio_tokens          integer;

-- success > cancelled > failure: the outcome of a call is its best attempt.
create function public.llmtally_status_rank(status text) returns integer
    language sql immutable parallel safe
    set search_path = ''
as $$
    select case status when 'success' then 3 when 'cancelled' then 2 else 1 end
$$;
comment on function public.llmtally_status_rank(text) is 'success 3 > cancelled 2 > failure 1: a call''s outcome.';

-- One measure of a call's row combined with a batch's attempts of the call: the better status's
-- value, or both added up when the statuses are equal (NULL, unpriced, if either is NULL).
create function public.llmtally_combine(old_status text, new_status text, old_value anycompatible,
                                        new_value anycompatible) returns anycompatible
    language sql immutable parallel safe
    set search_path = ''
as $$
    select case when public.llmtally_status_rank(new_status) > public.llmtally_status_rank(old_status) then new_value
                when public.llmtally_status_rank(new_status) < public.llmtally_status_rank(old_status) then old_value
                else old_value + new_value end
$$;
comment on function public.llmtally_combine(text, text, anycompatible, anycompatible) is
    'A call''s measure combined with new attempts: the better status''s value, or the sum of equal ones.';

-- ---------------------------------------------------------------------------------------------
-- The insert: attempts first (a replayed attempt stops here), then each call's row
-- ---------------------------------------------------------------------------------------------
-- Returns how many attempts were new (a replay counts 0). User, session map and custom prices as in
-- 0002; a cache hit keeps the cost LiteLLM reported (0) even under a custom price. Of one batch's new
-- attempts of a call, those with the best status give the usage and cost (summed), the latest of them
-- the descriptive fields. Combined with the call's row if it exists: a better status replaces the row's
-- outcome, an equal one adds its usage, a worse one only counts as an attempt. Rows and attempts are
-- written in key order, so concurrent writers lock them in the same order.
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
                    else coalesce(s.prompt_tokens, 0) * price.input_cost_per_token
                         + coalesce(s.completion_tokens, 0) * price.output_cost_per_token end as total_cost,
               case when price.model is not null and not coalesce(s.cache_hit, false) then 'custom'
                    else coalesce(s.cost_status, case when s.total_cost is null then 'unpriced' else 'priced' end)
               end as cost_status,
               s.messages, s.response, s.status, s.error, s.error_type, s.latency_ms,
               coalesce(s.stream, false) as stream, coalesce(s.metadata, '{}'::jsonb) as metadata,
               k.created_at, coalesce(s.cache_hit, false) as cache_hit, s.saved_cost,
               coalesce(s.usage_source, 'provider') as usage_source,
               public.llmtally_status_rank(s.status) as rank
          from pg_catalog.unnest(events) s
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
                select mp.model, mp.input_cost_per_token, mp.output_cost_per_token
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
               o.messages, o.response, o.status, o.error, o.error_type, o.max_latency, o.stream, o.metadata,
               o.first_at, o.n_attempts, o.n_failed
          from outcome o
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
-- Counters and rollups: the triggers of 0004 and 0008 with the new measures
-- ---------------------------------------------------------------------------------------------
create or replace function public.llmtally_apply_usage() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' then
        update public.user_profiles p set
            tokens_used           = p.tokens_used - d.tokens_used,
            prompt_tokens         = p.prompt_tokens - d.prompt_tokens,
            completion_tokens     = p.completion_tokens - d.completion_tokens,
            total_cost            = p.total_cost - d.total_cost,
            request_count         = p.request_count - d.request_count,
            success_count         = p.success_count - d.success_count,
            failure_count         = p.failure_count - d.failure_count,
            cancelled_count       = p.cancelled_count - d.cancelled_count,
            unpriced_count        = p.unpriced_count - d.unpriced_count,
            attempt_count         = p.attempt_count - d.attempt_count,
            failed_attempt_count  = p.failed_attempt_count - d.failed_attempt_count,
            cache_hit_count       = p.cache_hit_count - d.cache_hit_count,
            estimated_count       = p.estimated_count - d.estimated_count,
            cached_tokens         = p.cached_tokens - d.cached_tokens,
            cache_creation_tokens = p.cache_creation_tokens - d.cache_creation_tokens,
            reasoning_tokens      = p.reasoning_tokens - d.reasoning_tokens,
            audio_tokens          = p.audio_tokens - d.audio_tokens,
            saved_cost            = p.saved_cost - d.saved_cost
          from (select user_profile_id,
                       sum(tokens_used) as tokens_used,
                       sum(prompt_tokens) as prompt_tokens,
                       sum(completion_tokens) as completion_tokens,
                       coalesce(sum(total_cost), 0) as total_cost,
                       count(*) as request_count,
                       count(*) filter (where status = 'success') as success_count,
                       count(*) filter (where status = 'failure') as failure_count,
                       count(*) filter (where status = 'cancelled') as cancelled_count,
                       count(*) filter (where cost_status = 'unpriced') as unpriced_count,
                       sum(attempt_count) as attempt_count,
                       sum(failed_attempts) as failed_attempt_count,
                       count(*) filter (where cache_hit) as cache_hit_count,
                       count(*) filter (where usage_source = 'estimated') as estimated_count,
                       sum(cached_tokens) as cached_tokens,
                       sum(cache_creation_tokens) as cache_creation_tokens,
                       sum(reasoning_tokens) as reasoning_tokens,
                       sum(audio_tokens) as audio_tokens,
                       coalesce(sum(saved_cost), 0) as saved_cost
                  from old_rows
                 where user_profile_id is not null
                 group by user_profile_id
                 order by user_profile_id) d
         where p.user_id = d.user_profile_id;

        with agg as materialized (
            select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
                   count(*) as requests,
                   count(*) filter (where status = 'success') as successes,
                   count(*) filter (where status = 'failure') as failures,
                   count(*) filter (where status = 'cancelled') as cancelled,
                   sum(prompt_tokens) as prompt_tokens,
                   sum(completion_tokens) as completion_tokens,
                   sum(tokens_used) as tokens,
                   coalesce(sum(total_cost), 0) as cost,
                   count(*) filter (where cost_status = 'unpriced') as unpriced_requests,
                   coalesce(sum(latency_ms), 0) as latency_ms_sum,
                   sum(attempt_count) as attempts,
                   sum(failed_attempts) as failed_attempts,
                   count(*) filter (where cache_hit) as cache_hits,
                   count(*) filter (where usage_source = 'estimated') as estimated_requests,
                   sum(cached_tokens) as cached_tokens,
                   sum(cache_creation_tokens) as cache_creation_tokens,
                   sum(reasoning_tokens) as reasoning_tokens,
                   sum(audio_tokens) as audio_tokens,
                   coalesce(sum(saved_cost), 0) as saved_cost
              from old_rows
             group by 1, 2, 3, 4
        ), daily as (
            update public.usage_daily u set
                requests              = u.requests - d.requests,
                successes             = u.successes - d.successes,
                failures              = u.failures - d.failures,
                cancelled             = u.cancelled - d.cancelled,
                prompt_tokens         = u.prompt_tokens - d.prompt_tokens,
                completion_tokens     = u.completion_tokens - d.completion_tokens,
                tokens                = u.tokens - d.tokens,
                cost                  = u.cost - d.cost,
                unpriced_requests     = u.unpriced_requests - d.unpriced_requests,
                latency_ms_sum        = u.latency_ms_sum - d.latency_ms_sum,
                attempts              = u.attempts - d.attempts,
                failed_attempts       = u.failed_attempts - d.failed_attempts,
                cache_hits            = u.cache_hits - d.cache_hits,
                estimated_requests    = u.estimated_requests - d.estimated_requests,
                cached_tokens         = u.cached_tokens - d.cached_tokens,
                cache_creation_tokens = u.cache_creation_tokens - d.cache_creation_tokens,
                reasoning_tokens      = u.reasoning_tokens - d.reasoning_tokens,
                audio_tokens          = u.audio_tokens - d.audio_tokens,
                saved_cost            = u.saved_cost - d.saved_cost
              from (select * from agg order by user_id, day, model, provider) d
             where u.user_id is not distinct from d.user_id
               and u.day = d.day and u.model = d.model and u.provider = d.provider
        ), monthly as (
            update public.usage_monthly u set
                requests              = u.requests - d.requests,
                successes             = u.successes - d.successes,
                failures              = u.failures - d.failures,
                cancelled             = u.cancelled - d.cancelled,
                prompt_tokens         = u.prompt_tokens - d.prompt_tokens,
                completion_tokens     = u.completion_tokens - d.completion_tokens,
                tokens                = u.tokens - d.tokens,
                cost                  = u.cost - d.cost,
                unpriced_requests     = u.unpriced_requests - d.unpriced_requests,
                latency_ms_sum        = u.latency_ms_sum - d.latency_ms_sum,
                attempts              = u.attempts - d.attempts,
                failed_attempts       = u.failed_attempts - d.failed_attempts,
                cache_hits            = u.cache_hits - d.cache_hits,
                estimated_requests    = u.estimated_requests - d.estimated_requests,
                cached_tokens         = u.cached_tokens - d.cached_tokens,
                cache_creation_tokens = u.cache_creation_tokens - d.cache_creation_tokens,
                reasoning_tokens      = u.reasoning_tokens - d.reasoning_tokens,
                audio_tokens          = u.audio_tokens - d.audio_tokens,
                saved_cost            = u.saved_cost - d.saved_cost
              from (select user_id, date_trunc('month', day)::date as month, model, provider,
                           sum(requests) as requests,
                           sum(successes) as successes,
                           sum(failures) as failures,
                           sum(cancelled) as cancelled,
                           sum(prompt_tokens) as prompt_tokens,
                           sum(completion_tokens) as completion_tokens,
                           sum(tokens) as tokens,
                           sum(cost) as cost,
                           sum(unpriced_requests) as unpriced_requests,
                           sum(latency_ms_sum) as latency_ms_sum,
                           sum(attempts) as attempts,
                           sum(failed_attempts) as failed_attempts,
                           sum(cache_hits) as cache_hits,
                           sum(estimated_requests) as estimated_requests,
                           sum(cached_tokens) as cached_tokens,
                           sum(cache_creation_tokens) as cache_creation_tokens,
                           sum(reasoning_tokens) as reasoning_tokens,
                           sum(audio_tokens) as audio_tokens,
                           sum(saved_cost) as saved_cost
                      from agg group by 1, 2, 3, 4 order by 1, 2, 3, 4) d
             where u.user_id is not distinct from d.user_id
               and u.month = d.month and u.model = d.model and u.provider = d.provider
        )
        update public.usage_daily_totals u set
            requests              = u.requests - d.requests,
            successes             = u.successes - d.successes,
            failures              = u.failures - d.failures,
            cancelled             = u.cancelled - d.cancelled,
            prompt_tokens         = u.prompt_tokens - d.prompt_tokens,
            completion_tokens     = u.completion_tokens - d.completion_tokens,
            tokens                = u.tokens - d.tokens,
            cost                  = u.cost - d.cost,
            unpriced_requests     = u.unpriced_requests - d.unpriced_requests,
            latency_ms_sum        = u.latency_ms_sum - d.latency_ms_sum,
            attempts              = u.attempts - d.attempts,
            failed_attempts       = u.failed_attempts - d.failed_attempts,
            cache_hits            = u.cache_hits - d.cache_hits,
            estimated_requests    = u.estimated_requests - d.estimated_requests,
            cached_tokens         = u.cached_tokens - d.cached_tokens,
            cache_creation_tokens = u.cache_creation_tokens - d.cache_creation_tokens,
            reasoning_tokens      = u.reasoning_tokens - d.reasoning_tokens,
            audio_tokens          = u.audio_tokens - d.audio_tokens,
            saved_cost            = u.saved_cost - d.saved_cost
          from (select day, model, provider,
                       sum(requests) as requests,
                       sum(successes) as successes,
                       sum(failures) as failures,
                       sum(cancelled) as cancelled,
                       sum(prompt_tokens) as prompt_tokens,
                       sum(completion_tokens) as completion_tokens,
                       sum(tokens) as tokens,
                       sum(cost) as cost,
                       sum(unpriced_requests) as unpriced_requests,
                       sum(latency_ms_sum) as latency_ms_sum,
                       sum(attempts) as attempts,
                       sum(failed_attempts) as failed_attempts,
                       sum(cache_hits) as cache_hits,
                       sum(estimated_requests) as estimated_requests,
                       sum(cached_tokens) as cached_tokens,
                       sum(cache_creation_tokens) as cache_creation_tokens,
                       sum(reasoning_tokens) as reasoning_tokens,
                       sum(audio_tokens) as audio_tokens,
                       sum(saved_cost) as saved_cost
                  from agg group by 1, 2, 3 order by 1, 2, 3) d
         where u.day = d.day and u.model = d.model and u.provider = d.provider;
    end if;

    insert into public.user_profiles as p (
        user_id, tokens_used, prompt_tokens, completion_tokens, total_cost, request_count, success_count, failure_count, cancelled_count, unpriced_count, attempt_count, failed_attempt_count, cache_hit_count, estimated_count, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost,
        first_request_at, last_request_at)
    select user_profile_id,
           sum(tokens_used),
           sum(prompt_tokens),
           sum(completion_tokens),
           coalesce(sum(total_cost), 0),
           count(*),
           count(*) filter (where status = 'success'),
           count(*) filter (where status = 'failure'),
           count(*) filter (where status = 'cancelled'),
           count(*) filter (where cost_status = 'unpriced'),
           sum(attempt_count),
           sum(failed_attempts),
           count(*) filter (where cache_hit),
           count(*) filter (where usage_source = 'estimated'),
           sum(cached_tokens),
           sum(cache_creation_tokens),
           sum(reasoning_tokens),
           sum(audio_tokens),
           coalesce(sum(saved_cost), 0),
           min(created_at), max(created_at)
      from new_rows
     where user_profile_id is not null
     group by user_profile_id
     order by user_profile_id
    on conflict (user_id) do update set
        tokens_used           = p.tokens_used + excluded.tokens_used,
        prompt_tokens         = p.prompt_tokens + excluded.prompt_tokens,
        completion_tokens     = p.completion_tokens + excluded.completion_tokens,
        total_cost            = p.total_cost + excluded.total_cost,
        request_count         = p.request_count + excluded.request_count,
        success_count         = p.success_count + excluded.success_count,
        failure_count         = p.failure_count + excluded.failure_count,
        cancelled_count       = p.cancelled_count + excluded.cancelled_count,
        unpriced_count        = p.unpriced_count + excluded.unpriced_count,
        attempt_count         = p.attempt_count + excluded.attempt_count,
        failed_attempt_count  = p.failed_attempt_count + excluded.failed_attempt_count,
        cache_hit_count       = p.cache_hit_count + excluded.cache_hit_count,
        estimated_count       = p.estimated_count + excluded.estimated_count,
        cached_tokens         = p.cached_tokens + excluded.cached_tokens,
        cache_creation_tokens = p.cache_creation_tokens + excluded.cache_creation_tokens,
        reasoning_tokens      = p.reasoning_tokens + excluded.reasoning_tokens,
        audio_tokens          = p.audio_tokens + excluded.audio_tokens,
        saved_cost            = p.saved_cost + excluded.saved_cost,
        first_request_at      = least(p.first_request_at, excluded.first_request_at),
        last_request_at       = greatest(p.last_request_at, excluded.last_request_at);

    with agg as materialized (
        select user_profile_id as user_id, (created_at at time zone 'UTC')::date as day, model, provider,
               count(*) as requests,
               count(*) filter (where status = 'success') as successes,
               count(*) filter (where status = 'failure') as failures,
               count(*) filter (where status = 'cancelled') as cancelled,
               sum(prompt_tokens) as prompt_tokens,
               sum(completion_tokens) as completion_tokens,
               sum(tokens_used) as tokens,
               coalesce(sum(total_cost), 0) as cost,
               count(*) filter (where cost_status = 'unpriced') as unpriced_requests,
               coalesce(sum(latency_ms), 0) as latency_ms_sum,
               sum(attempt_count) as attempts,
               sum(failed_attempts) as failed_attempts,
               count(*) filter (where cache_hit) as cache_hits,
               count(*) filter (where usage_source = 'estimated') as estimated_requests,
               sum(cached_tokens) as cached_tokens,
               sum(cache_creation_tokens) as cache_creation_tokens,
               sum(reasoning_tokens) as reasoning_tokens,
               sum(audio_tokens) as audio_tokens,
               coalesce(sum(saved_cost), 0) as saved_cost
          from new_rows
         group by 1, 2, 3, 4
    ), daily as (
        insert into public.usage_daily as u (
            user_id, day, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
        select user_id, day, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost
          from agg
         order by user_id, day, model, provider
        on conflict on constraint usage_daily_key do update set
            requests              = u.requests + excluded.requests,
            successes             = u.successes + excluded.successes,
            failures              = u.failures + excluded.failures,
            cancelled             = u.cancelled + excluded.cancelled,
            prompt_tokens         = u.prompt_tokens + excluded.prompt_tokens,
            completion_tokens     = u.completion_tokens + excluded.completion_tokens,
            tokens                = u.tokens + excluded.tokens,
            cost                  = u.cost + excluded.cost,
            unpriced_requests     = u.unpriced_requests + excluded.unpriced_requests,
            latency_ms_sum        = u.latency_ms_sum + excluded.latency_ms_sum,
            attempts              = u.attempts + excluded.attempts,
            failed_attempts       = u.failed_attempts + excluded.failed_attempts,
            cache_hits            = u.cache_hits + excluded.cache_hits,
            estimated_requests    = u.estimated_requests + excluded.estimated_requests,
            cached_tokens         = u.cached_tokens + excluded.cached_tokens,
            cache_creation_tokens = u.cache_creation_tokens + excluded.cache_creation_tokens,
            reasoning_tokens      = u.reasoning_tokens + excluded.reasoning_tokens,
            audio_tokens          = u.audio_tokens + excluded.audio_tokens,
            saved_cost            = u.saved_cost + excluded.saved_cost
    ), monthly as (
        insert into public.usage_monthly as u (
            user_id, month, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
        select user_id, date_trunc('month', day)::date, model, provider,
               sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens), sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum), sum(attempts), sum(failed_attempts), sum(cache_hits), sum(estimated_requests), sum(cached_tokens), sum(cache_creation_tokens), sum(reasoning_tokens), sum(audio_tokens), sum(saved_cost)
          from agg
         group by 1, 2, 3, 4
         order by 1, 2, 3, 4
        on conflict on constraint usage_monthly_key do update set
            requests              = u.requests + excluded.requests,
            successes             = u.successes + excluded.successes,
            failures              = u.failures + excluded.failures,
            cancelled             = u.cancelled + excluded.cancelled,
            prompt_tokens         = u.prompt_tokens + excluded.prompt_tokens,
            completion_tokens     = u.completion_tokens + excluded.completion_tokens,
            tokens                = u.tokens + excluded.tokens,
            cost                  = u.cost + excluded.cost,
            unpriced_requests     = u.unpriced_requests + excluded.unpriced_requests,
            latency_ms_sum        = u.latency_ms_sum + excluded.latency_ms_sum,
            attempts              = u.attempts + excluded.attempts,
            failed_attempts       = u.failed_attempts + excluded.failed_attempts,
            cache_hits            = u.cache_hits + excluded.cache_hits,
            estimated_requests    = u.estimated_requests + excluded.estimated_requests,
            cached_tokens         = u.cached_tokens + excluded.cached_tokens,
            cache_creation_tokens = u.cache_creation_tokens + excluded.cache_creation_tokens,
            reasoning_tokens      = u.reasoning_tokens + excluded.reasoning_tokens,
            audio_tokens          = u.audio_tokens + excluded.audio_tokens,
            saved_cost            = u.saved_cost + excluded.saved_cost
    )
    insert into public.usage_daily_totals as u (
        day, model, provider, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
    select day, model, provider,
           sum(requests), sum(successes), sum(failures), sum(cancelled), sum(prompt_tokens), sum(completion_tokens), sum(tokens), sum(cost), sum(unpriced_requests), sum(latency_ms_sum), sum(attempts), sum(failed_attempts), sum(cache_hits), sum(estimated_requests), sum(cached_tokens), sum(cache_creation_tokens), sum(reasoning_tokens), sum(audio_tokens), sum(saved_cost)
      from agg
     group by 1, 2, 3
     order by 1, 2, 3
    on conflict (day, model, provider) do update set
        requests              = u.requests + excluded.requests,
        successes             = u.successes + excluded.successes,
        failures              = u.failures + excluded.failures,
        cancelled             = u.cancelled + excluded.cancelled,
        prompt_tokens         = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens     = u.completion_tokens + excluded.completion_tokens,
        tokens                = u.tokens + excluded.tokens,
        cost                  = u.cost + excluded.cost,
        unpriced_requests     = u.unpriced_requests + excluded.unpriced_requests,
        latency_ms_sum        = u.latency_ms_sum + excluded.latency_ms_sum,
        attempts              = u.attempts + excluded.attempts,
        failed_attempts       = u.failed_attempts + excluded.failed_attempts,
        cache_hits            = u.cache_hits + excluded.cache_hits,
        estimated_requests    = u.estimated_requests + excluded.estimated_requests,
        cached_tokens         = u.cached_tokens + excluded.cached_tokens,
        cache_creation_tokens = u.cache_creation_tokens + excluded.cache_creation_tokens,
        reasoning_tokens      = u.reasoning_tokens + excluded.reasoning_tokens,
        audio_tokens          = u.audio_tokens + excluded.audio_tokens,
        saved_cost            = u.saved_cost + excluded.saved_cost;
    return null;
end
$$;

create or replace function public.llmtally_apply_usage_monthly_users() returns trigger
    language plpgsql
    set search_path = ''
as $$
begin
    if tg_op = 'UPDATE' then
        update public.usage_monthly_users u set
            requests              = u.requests - d.requests,
            successes             = u.successes - d.successes,
            failures              = u.failures - d.failures,
            cancelled             = u.cancelled - d.cancelled,
            prompt_tokens         = u.prompt_tokens - d.prompt_tokens,
            completion_tokens     = u.completion_tokens - d.completion_tokens,
            tokens                = u.tokens - d.tokens,
            cost                  = u.cost - d.cost,
            unpriced_requests     = u.unpriced_requests - d.unpriced_requests,
            latency_ms_sum        = u.latency_ms_sum - d.latency_ms_sum,
            attempts              = u.attempts - d.attempts,
            failed_attempts       = u.failed_attempts - d.failed_attempts,
            cache_hits            = u.cache_hits - d.cache_hits,
            estimated_requests    = u.estimated_requests - d.estimated_requests,
            cached_tokens         = u.cached_tokens - d.cached_tokens,
            cache_creation_tokens = u.cache_creation_tokens - d.cache_creation_tokens,
            reasoning_tokens      = u.reasoning_tokens - d.reasoning_tokens,
            audio_tokens          = u.audio_tokens - d.audio_tokens,
            saved_cost            = u.saved_cost - d.saved_cost
          from (select user_profile_id as user_id,
                       date_trunc('month', created_at at time zone 'UTC')::date as month,
                       count(*) as requests,
                       count(*) filter (where status = 'success') as successes,
                       count(*) filter (where status = 'failure') as failures,
                       count(*) filter (where status = 'cancelled') as cancelled,
                       sum(prompt_tokens) as prompt_tokens,
                       sum(completion_tokens) as completion_tokens,
                       sum(tokens_used) as tokens,
                       coalesce(sum(total_cost), 0) as cost,
                       count(*) filter (where cost_status = 'unpriced') as unpriced_requests,
                       coalesce(sum(latency_ms), 0) as latency_ms_sum,
                       sum(attempt_count) as attempts,
                       sum(failed_attempts) as failed_attempts,
                       count(*) filter (where cache_hit) as cache_hits,
                       count(*) filter (where usage_source = 'estimated') as estimated_requests,
                       sum(cached_tokens) as cached_tokens,
                       sum(cache_creation_tokens) as cache_creation_tokens,
                       sum(reasoning_tokens) as reasoning_tokens,
                       sum(audio_tokens) as audio_tokens,
                       coalesce(sum(saved_cost), 0) as saved_cost
                  from old_rows
                 group by 1, 2
                 order by 1, 2) d
         where u.user_id is not distinct from d.user_id and u.month = d.month;
    end if;

    insert into public.usage_monthly_users as u (
        user_id, month, requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost, unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests, cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
    select user_profile_id, date_trunc('month', created_at at time zone 'UTC')::date,
           count(*),
           count(*) filter (where status = 'success'),
           count(*) filter (where status = 'failure'),
           count(*) filter (where status = 'cancelled'),
           sum(prompt_tokens),
           sum(completion_tokens),
           sum(tokens_used),
           coalesce(sum(total_cost), 0),
           count(*) filter (where cost_status = 'unpriced'),
           coalesce(sum(latency_ms), 0),
           sum(attempt_count),
           sum(failed_attempts),
           count(*) filter (where cache_hit),
           count(*) filter (where usage_source = 'estimated'),
           sum(cached_tokens),
           sum(cache_creation_tokens),
           sum(reasoning_tokens),
           sum(audio_tokens),
           coalesce(sum(saved_cost), 0)
      from new_rows
     group by 1, 2
     order by 1, 2
    on conflict on constraint usage_monthly_users_key do update set
        requests              = u.requests + excluded.requests,
        successes             = u.successes + excluded.successes,
        failures              = u.failures + excluded.failures,
        cancelled             = u.cancelled + excluded.cancelled,
        prompt_tokens         = u.prompt_tokens + excluded.prompt_tokens,
        completion_tokens     = u.completion_tokens + excluded.completion_tokens,
        tokens                = u.tokens + excluded.tokens,
        cost                  = u.cost + excluded.cost,
        unpriced_requests     = u.unpriced_requests + excluded.unpriced_requests,
        latency_ms_sum        = u.latency_ms_sum + excluded.latency_ms_sum,
        attempts              = u.attempts + excluded.attempts,
        failed_attempts       = u.failed_attempts + excluded.failed_attempts,
        cache_hits            = u.cache_hits + excluded.cache_hits,
        estimated_requests    = u.estimated_requests + excluded.estimated_requests,
        cached_tokens         = u.cached_tokens + excluded.cached_tokens,
        cache_creation_tokens = u.cache_creation_tokens + excluded.cache_creation_tokens,
        reasoning_tokens      = u.reasoning_tokens + excluded.reasoning_tokens,
        audio_tokens          = u.audio_tokens + excluded.audio_tokens,
        saved_cost            = u.saved_cost + excluded.saved_cost;
    return null;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Settlement: a reservation is settled by its call's row, whichever attempt's id it was made under
-- ---------------------------------------------------------------------------------------------
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

    delete from public.budget_reservations rv
     using new_rows n where rv.litellm_call_id in (n.litellm_call_id, n.call_key);
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

-- A call's row updated (a success after its failure, a reprice): its reservation, if still there, goes,
-- the rate window gets its tokens and thresholds are checked against the new spend.
create trigger request_logs_usage_update_settle
    after update on public.request_logs
    referencing new table as new_rows
    for each statement execute function public.llmtally_settle_budgets();

-- ---------------------------------------------------------------------------------------------
-- Views: the attempt counts where an operator reads the per-user summary
-- ---------------------------------------------------------------------------------------------
create or replace view public.user_request_analytics with (security_invoker = true) as
select p.user_id,
       p.email,
       p.full_name,
       p.provider,
       p.request_count as total_requests,
       p.success_count as successful_requests,
       p.failure_count as failed_requests,
       p.cancelled_count as cancelled_requests,
       case when p.request_count > 0
            then round(p.failure_count::numeric / p.request_count, 4) end as error_rate,
       p.prompt_tokens,
       p.completion_tokens,
       p.tokens_used as total_tokens,
       p.total_cost,
       p.unpriced_count as unpriced_requests,
       array(select distinct d.model from public.usage_daily d where d.user_id = p.user_id order by 1)
           as models_used,
       p.first_request_at,
       p.last_request_at,
       p.attempt_count as total_attempts,
       p.failed_attempt_count as failed_attempts,
       p.cache_hit_count as cache_hits,
       p.estimated_count as estimated_requests,
       p.cached_tokens,
       p.cache_creation_tokens,
       p.reasoning_tokens,
       p.audio_tokens,
       p.saved_cost
  from public.user_profiles p;

-- ---------------------------------------------------------------------------------------------
-- Row-level security and grants: a user reads the attempts of their own calls; only the server writes
-- ---------------------------------------------------------------------------------------------
alter table public.request_attempts enable row level security;

create policy request_attempts_read_own on public.request_attempts
    for select to authenticated using (user_profile_id = ((select auth.jwt()) ->> 'sub'));

revoke all on table public.request_attempts from public, anon, authenticated;
revoke all on sequence public.request_attempts_id_seq from public, anon, authenticated;
grant select on table public.request_attempts to authenticated;
grant all on table public.request_attempts to service_role;
grant usage on sequence public.request_attempts_id_seq to service_role;

revoke all on function public.llmtally_status_rank(text),
    public.llmtally_combine(text, text, anycompatible, anycompatible)
    from public, anon, authenticated;
grant execute on function public.llmtally_status_rank(text),
    public.llmtally_combine(text, text, anycompatible, anycompatible)
    to service_role;
-- create or replace keeps the grants of 0002 (service_role only) on llmtally_insert_events.

-- ---------------------------------------------------------------------------------------------
-- One name per model: the provider prefix a Router or the Proxy reports ("openai/gpt-4o-mini") is in
-- provider already. Existing rows get the SDK's name; the UPDATE triggers move counters and rollups to
-- the new keys. Rollup rows of calls that retention already deleted keep the old name.
-- ---------------------------------------------------------------------------------------------
update public.request_logs
   set model = pg_catalog.substr(model, pg_catalog.length(provider) + 2)
 where provider <> '' and pg_catalog.length(model) > pg_catalog.length(provider) + 1
   and pg_catalog.left(model, pg_catalog.length(provider) + 1) = provider || '/';
update public.request_attempts
   set model = pg_catalog.substr(model, pg_catalog.length(provider) + 2)
 where provider <> '' and pg_catalog.length(model) > pg_catalog.length(provider) + 1
   and pg_catalog.left(model, pg_catalog.length(provider) + 1) = provider || '/';
