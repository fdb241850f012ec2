-- llmtally: per-user API tokens for the JSON API, and an index for the dashboard's recent failures.
--
-- A token is shown once when it is created; only its SHA-256 is stored. No client role may read or
-- write the table: the server checks tokens, and the CLI issues and revokes them.

create table public.api_tokens (
    id           bigint generated always as identity primary key,
    user_id      text not null references public.user_profiles (user_id) on delete cascade,
    name         text not null default '',
    token_hash   text not null unique check (token_hash ~ '^[0-9a-f]{64}$'),
    prefix       text not null,
    created_at   timestamptz not null default now(),
    expires_at   timestamptz,
    revoked_at   timestamptz,
    last_used_at timestamptz
);
create index api_tokens_user_id_idx on public.api_tokens (user_id);
comment on table public.api_tokens is
    'API tokens for /api/v1 (SHA-256 of the token only); issued and revoked with `llmtally tokens`.';

alter table public.api_tokens enable row level security;
-- No policy: only the server (table owner, service_role) reads or writes it.
revoke all on table public.api_tokens from public, anon, authenticated;
revoke all on sequence public.api_tokens_id_seq from public, anon, authenticated;
grant all on table public.api_tokens to service_role;
grant usage on sequence public.api_tokens_id_seq to service_role;

-- The dashboard lists the most recent failures of a period: a small partial index, newest first.
create index request_logs_failures_idx on public.request_logs (created_at desc, id desc) where status = 'failure';
