-- llmtally: login sessions of the chat app that the server can end, and chat sessions that keep their user.
--
-- The chat's login cookie is a signed JWT. Alone it cannot be withdrawn: it stays valid until it expires.
-- Each login now also has a row here, named in the JWT; the server accepts the cookie only while the row
-- is neither revoked nor expired. Logout, an administrator's `llmtally users revoke-sessions USER` and the
-- removal of a password login from LLMTALLY_USERS set revoked_at, and the cookie stops working at once.
-- Only the server reads or writes the table.

create table public.web_sessions (
    id          uuid primary key default gen_random_uuid(),
    user_id     text not null check (user_id <> ''),
    provider    text not null default '',
    created_at  timestamptz not null default now(),
    expires_at  timestamptz not null check (isfinite(expires_at)),
    revoked_at  timestamptz,
    revoked_why text
);
create index web_sessions_user_id_idx on public.web_sessions (user_id) where revoked_at is null;
create index web_sessions_expires_at_idx on public.web_sessions (expires_at);
comment on table public.web_sessions is
    'Login sessions of the chat app; a session cookie is accepted only while its row is active. Server only.';

alter table public.web_sessions enable row level security;
-- No policy: only the server (table owner, service_role) reads or writes it.
revoke all on table public.web_sessions from public, anon, authenticated;
grant all on table public.web_sessions to service_role;

-- A chat session id names one user for good. Migration 0002's version moved an existing session to
-- whichever user linked it last, so a client that chose another user's session id took over the calls
-- attributed through it. Now a session linked to another user is refused.
create or replace function public.llmtally_link_session(session_id text, user_id text) returns void
    language plpgsql
    set search_path = ''
as $$
begin
    perform public.llmtally_upsert_user(llmtally_link_session.user_id);
    insert into public.sessions as s (session_id, user_id)
    values (llmtally_link_session.session_id, llmtally_link_session.user_id)
    on conflict on constraint sessions_pkey do update set last_seen_at = pg_catalog.now()
     where s.user_id = excluded.user_id;
    if not found then
        raise exception 'session id % is linked to another user', llmtally_link_session.session_id
            using errcode = 'unique_violation';
    end if;
end;
$$;
comment on function public.llmtally_link_session(text, text) is
    'Map a new session id to a user (refused when the id is linked to another user). service_role only.';
