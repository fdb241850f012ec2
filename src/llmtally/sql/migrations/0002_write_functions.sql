-- llmtally 0002: the server's writes as functions, shared by every write path.
--
-- public.llmtally_insert_events(llmtally_event[]) holds the ledger's insert: the user from the
-- event, else from the session map; a custom price from model_prices; ON CONFLICT
-- (litellm_call_id) DO NOTHING. The direct writer COPYs a batch into a temp table of type
-- llmtally_event and passes it here. The Supabase API path calls public.llmtally_ingest(jsonb)
-- through PostgREST (POST /rest/v1/rpc/llmtally_ingest), which converts a JSON array and calls the
-- same function. llmtally_upsert_user and llmtally_link_session serve both paths the same way.
--
-- None is security definer: the caller needs the privileges of a role that writes request_logs
-- (the schema owner, or service_role), and only service_role is granted execute.

-- One event as the writers hand it over (the column order of the writer's COPY). seq is the
-- event's position in its batch: rows are inserted in that order.
create type public.llmtally_event as (
    seq               integer,
    user_profile_id   text,
    end_user          text,
    session_id        text,
    litellm_call_id   text,
    model             text,
    provider          text,
    prompt_tokens     integer,
    completion_tokens integer,
    tokens_used       integer,
    total_cost        numeric,
    cost_status       text,
    messages          jsonb,
    response          jsonb,
    status            text,
    error             text,
    error_type        text,
    latency_ms        integer,
    stream            boolean,
    metadata          jsonb,
    created_at        timestamptz
);
comment on type public.llmtally_event is 'One usage event as the ledger writers hand it to llmtally_insert_events.';

-- Insert a batch; return how many rows were new (a replayed litellm_call_id counts 0).
-- User: the event's own user id, else the session map (by session id, then by the raw `user`).
-- Cost: a custom price in model_prices wins over what the event carries.
-- Optional fields left NULL get request_logs' defaults (provider 'unknown', 0 tokens, not streamed,
-- empty metadata, now()); a NULL cost_status is 'unpriced' without a cost, else 'priced'. The
-- statement-level trigger on request_logs updates counters and the rollup in the same transaction.
create function public.llmtally_insert_events(events public.llmtally_event[]) returns integer
    language plpgsql
    set search_path = ''
as $$
declare
    inserted integer;
begin
    insert into public.request_logs (user_profile_id, end_user, session_id, litellm_call_id, model, provider,
        prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
        error, error_type, latency_ms, stream, metadata, created_at)
    select coalesce(nullif(s.user_profile_id, ''), by_session.user_id, by_end_user.user_id),
           s.end_user, s.session_id, s.litellm_call_id, s.model, coalesce(s.provider, 'unknown'),
           coalesce(s.prompt_tokens, 0), coalesce(s.completion_tokens, 0), coalesce(s.tokens_used, 0),
           case when price.model is null then s.total_cost
                else coalesce(s.prompt_tokens, 0) * price.input_cost_per_token
                     + coalesce(s.completion_tokens, 0) * price.output_cost_per_token end,
           case when price.model is not null then 'custom'
                else coalesce(s.cost_status, case when s.total_cost is null then 'unpriced' else 'priced' end) end,
           s.messages, s.response, s.status, s.error, s.error_type, s.latency_ms, coalesce(s.stream, false),
           coalesce(s.metadata, '{}'::jsonb), coalesce(s.created_at, pg_catalog.now())
      from pg_catalog.unnest(events) s
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
     order by s.seq
    on conflict (litellm_call_id) do nothing;
    get diagnostics inserted = row_count;
    return inserted;
end
$$;
comment on function public.llmtally_insert_events(public.llmtally_event[]) is
    'Insert a batch of usage events into request_logs (idempotent on litellm_call_id); returns the number of new rows.';

-- The Supabase API entry point: POST /rest/v1/rpc/llmtally_ingest {"events": [{...}, ...]}.
-- Each event is a JSON object with the fields of llmtally_event (seq is ignored: the array's order
-- counts). Numbers may be given as strings, so costs stay exact.
create function public.llmtally_ingest(events jsonb) returns integer
    language plpgsql
    set search_path = ''
as $$
begin
    if events is null or pg_catalog.jsonb_typeof(events) <> 'array' then
        raise exception 'llmtally_ingest expects a JSON array of events, not %',
            coalesce(pg_catalog.jsonb_typeof(events), 'null')
            using errcode = '22023';
    end if;
    if exists (select from pg_catalog.jsonb_array_elements(events) e where pg_catalog.jsonb_typeof(e) <> 'object') then
        raise exception 'llmtally_ingest expects every event to be a JSON object' using errcode = '22023';
    end if;
    return public.llmtally_insert_events(array(
        select pg_catalog.jsonb_populate_record(null::public.llmtally_event,
                                                e.value || pg_catalog.jsonb_build_object('seq', e.ordinality))
          from pg_catalog.jsonb_array_elements(events) with ordinality as e
         order by e.ordinality));
end
$$;
comment on function public.llmtally_ingest(jsonb) is
    'Insert a JSON array of usage events (the Supabase API path); returns the number of new rows. service_role only.';

-- A user's profile, created or refreshed (at every login): non-NULL arguments overwrite.
create function public.llmtally_upsert_user(user_id text, email text default null, full_name text default null,
                                           provider text default null) returns void
    language sql
    set search_path = ''
as $$
    insert into public.user_profiles as p (user_id, email, full_name, provider, last_seen_at)
    values (llmtally_upsert_user.user_id, llmtally_upsert_user.email, llmtally_upsert_user.full_name,
            llmtally_upsert_user.provider, pg_catalog.now())
    on conflict (user_id) do update set
        email        = coalesce(excluded.email, p.email),
        full_name    = coalesce(excluded.full_name, p.full_name),
        provider     = coalesce(excluded.provider, p.provider),
        last_seen_at = pg_catalog.now();
$$;
comment on function public.llmtally_upsert_user(text, text, text, text) is
    'Create or refresh a user profile; NULL arguments keep the stored values. service_role only.';

-- Map a session id to a user (creating the user's profile if missing).
create function public.llmtally_link_session(session_id text, user_id text) returns void
    language sql
    set search_path = ''
as $$
    select public.llmtally_upsert_user(llmtally_link_session.user_id);
    insert into public.sessions as s (session_id, user_id)
    values (llmtally_link_session.session_id, llmtally_link_session.user_id)
    on conflict (session_id) do update set user_id = excluded.user_id, last_seen_at = pg_catalog.now();
$$;
comment on function public.llmtally_link_session(text, text) is
    'Map a session id to a user, so calls that carry only the session are attributed. service_role only.';

-- Only the server writes: Supabase's default privileges grant new functions to anon and
-- authenticated, and PostgreSQL grants execute to public; take both back.
revoke all on function public.llmtally_insert_events(public.llmtally_event[]), public.llmtally_ingest(jsonb),
    public.llmtally_upsert_user(text, text, text, text), public.llmtally_link_session(text, text)
    from public, anon, authenticated;
grant execute on function public.llmtally_insert_events(public.llmtally_event[]), public.llmtally_ingest(jsonb),
    public.llmtally_upsert_user(text, text, text, text), public.llmtally_link_session(text, text)
    to service_role;
