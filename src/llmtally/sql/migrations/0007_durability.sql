-- llmtally 0007: durability and privacy: truncated-content flags, the quarantine, row retention.
--
-- request_logs.content_truncated / content_original_bytes: set when a call's content was too large
-- (or could not be serialised) and was stored cut; usage and cost are always complete. The writers
-- pass the flag inside metadata under the key _llmtally_content (so the batch type and insert function
-- of 0002 stay as they are); a BEFORE INSERT trigger that fires only for such rows moves it into the
-- columns.
--
-- public.quarantine: events the database refused even alone and without content (e.g. a token count
-- beyond integer range), with the reason and the raw record, for `llmtally quarantine list|retry`.
-- Server only: RLS on, no policy, no grant to anon or authenticated. llmtally_quarantine(jsonb) adds
-- rows for the Supabase API path.
--
-- Deleting request_logs rows (retention, user deletion) changes no counter: the usage triggers of
-- 0001 fire on INSERT and UPDATE only, so user_profiles and the rollups keep the lifetime totals.

alter table public.request_logs
    add column content_truncated boolean not null default false,
    add column content_original_bytes bigint check (content_original_bytes >= 0);
comment on column public.request_logs.content_truncated is
    'True when messages/response were cut (too large or unserialisable); usage and cost are complete.';
comment on column public.request_logs.content_original_bytes is 'Size of the content before it was cut.';

create function public.llmtally_content_flag() returns trigger
    language plpgsql
    set search_path = ''
as $$
declare
    flag jsonb := new.metadata -> '_llmtally_content';
begin
    new.content_truncated := coalesce((flag ->> 'truncated')::boolean, false);
    new.content_original_bytes := greatest(0, (flag ->> 'original_bytes')::bigint);
    new.metadata := new.metadata - '_llmtally_content';
    return new;
end
$$;
comment on function public.llmtally_content_flag() is
    'Moves the writers'' _llmtally_content metadata key into content_truncated / content_original_bytes.';

create trigger request_logs_content_flag
    before insert on public.request_logs
    for each row
    when (pg_catalog.jsonb_typeof(new.metadata) = 'object' and new.metadata ? '_llmtally_content')
    execute function public.llmtally_content_flag();

create table public.quarantine (
    id              bigint generated always as identity primary key,
    litellm_call_id text,
    reason          text not null,
    raw_event       text not null,
    raw_bytes       bigint not null default 0 check (raw_bytes >= 0),
    attempts        integer not null default 0 check (attempts >= 0),
    created_at      timestamptz not null default now(),
    retried_at      timestamptz
);
create index quarantine_call_idx on public.quarantine (litellm_call_id);
comment on table public.quarantine is
    'Usage events the database refused, with the reason and the raw spool record; server only.';

alter table public.quarantine enable row level security;
-- No policy: only the server (table owner, service_role) reads or writes it.
revoke all on table public.quarantine from public, anon, authenticated;
revoke all on sequence public.quarantine_id_seq from public, anon, authenticated;
grant all on table public.quarantine to service_role;
grant usage on sequence public.quarantine_id_seq to service_role;
revoke all on function public.llmtally_content_flag() from public, anon, authenticated;

-- The Supabase API path quarantines through PostgREST: POST /rest/v1/rpc/llmtally_quarantine
-- {"events": [{"litellm_call_id": ..., "reason": ..., "raw_event": ...}, ...]}. Not security definer:
-- the caller needs the privileges of a role that writes quarantine (service_role).
create function public.llmtally_quarantine(events jsonb) returns integer
    language sql
    set search_path = ''
as $$
    with added as (
        insert into public.quarantine (litellm_call_id, reason, raw_event, raw_bytes)
        select e ->> 'litellm_call_id', coalesce(e ->> 'reason', 'unknown'), coalesce(e ->> 'raw_event', ''),
               pg_catalog.octet_length(coalesce(e ->> 'raw_event', ''))
          from pg_catalog.jsonb_array_elements(events) e
        returning 1)
    select pg_catalog.count(*)::integer from added;
$$;
comment on function public.llmtally_quarantine(jsonb) is
    'Keep usage events the database refused, with the reason and the raw record. service_role only.';
revoke all on function public.llmtally_quarantine(jsonb) from public, anon, authenticated;
grant execute on function public.llmtally_quarantine(jsonb) to service_role;
