-- llmtally 0017: the audit log. Who changed a budget, a rate limit, a price or an API token, or deleted
-- a user, and when: one row per changed row, written by triggers in the transaction of the change, so
-- no change lands without its row and no row tells of a change that was rolled back.
--
-- Who: the transaction-local setting llmtally.actor, which the server sets at the start of every
-- transaction it opens on behalf of someone (llmtally.db.acting_as): `web:USER_ID` for an administrator
-- in the pages, `cli:OS_USER` for the command line. A change made outside llmtally (psql, the Supabase
-- SQL editor) is logged as `sql:LOGIN`, the database login that made it.
--
-- What: the table, the row's subject (a user id, `default`, a model, a token's prefix) and the row
-- before and after as JSON; a token's hash never leaves api_tokens. Rows that change on every call are
-- not logged: a token's last_used_at, a user's counters (only a user's deletion is logged).
-- Only the server (service_role, the owner) reads the log; no client role may read or write it.

create table public.audit_log (
    id       bigint generated always as identity primary key,
    at       timestamptz not null default now() constraint audit_log_at_finite check (isfinite(at)),
    actor    text not null check (actor <> ''),
    action   text not null check (action in ('insert', 'update', 'delete', 'reprice')),
    object   text not null,
    subject  text not null,
    before   jsonb,
    after    jsonb
);
create index audit_log_at_idx on public.audit_log (at desc, id desc);
comment on table public.audit_log is
    'Who changed budgets, rate limits, prices, API tokens or deleted a user, and when. Written by triggers.';

alter table public.audit_log enable row level security;
-- No policy: only the server (table owner, service_role) reads or writes it.
revoke all on table public.audit_log from public, anon, authenticated;
revoke all on sequence public.audit_log_id_seq from public, anon, authenticated;
grant select, insert on table public.audit_log to service_role;
grant usage on sequence public.audit_log_id_seq to service_role;

create function public.llmtally_actor() returns text
    language sql stable
    set search_path = ''
as $$
    select coalesce(nullif(pg_catalog.current_setting('llmtally.actor', true), ''), 'sql:' || session_user)
$$;
comment on function public.llmtally_actor() is
    'Who is changing things in this transaction: llmtally.actor, else the database login as sql:LOGIN.';

create function public.llmtally_audit_change() returns trigger
    language plpgsql
    set search_path = ''
as $$
declare
    before_row jsonb := case when tg_op = 'INSERT' then null else pg_catalog.to_jsonb(old) - 'token_hash' end;
    after_row  jsonb := case when tg_op = 'DELETE' then null else pg_catalog.to_jsonb(new) - 'token_hash' end;
    row_now    jsonb := coalesce(after_row, before_row);
    subject    text;
begin
    subject := case tg_table_name
        when 'budgets' then coalesce(row_now ->> 'user_profile_id', 'default') || ' ' || (row_now ->> 'period')
        when 'rate_limits' then coalesce(row_now ->> 'user_profile_id', 'default')
        when 'model_prices' then row_now ->> 'model'
        when 'api_tokens' then (row_now ->> 'prefix') || '… of ' || (row_now ->> 'user_id')
        else row_now ->> 'user_id'
    end;
    insert into public.audit_log (actor, action, object, subject, before, after)
    values (public.llmtally_actor(), pg_catalog.lower(tg_op), tg_table_name, coalesce(subject, ''), before_row,
            after_row);
    return null;
end;
$$;

revoke all on function public.llmtally_actor(), public.llmtally_audit_change() from public, anon, authenticated;
grant execute on function public.llmtally_actor(), public.llmtally_audit_change() to service_role;

create trigger budgets_audit after insert or update or delete on public.budgets
    for each row execute function public.llmtally_audit_change();
create trigger rate_limits_audit after insert or update or delete on public.rate_limits
    for each row execute function public.llmtally_audit_change();
create trigger model_prices_audit after insert or update or delete on public.model_prices
    for each row execute function public.llmtally_audit_change();
create trigger api_tokens_audit_insert_delete after insert or delete on public.api_tokens
    for each row execute function public.llmtally_audit_change();
-- A token's use updates last_used_at on every request: only a change of what the token may do is logged.
create trigger api_tokens_audit_update after update on public.api_tokens
    for each row
    when (old.revoked_at is distinct from new.revoked_at or old.expires_at is distinct from new.expires_at
          or old.name is distinct from new.name or old.user_id is distinct from new.user_id)
    execute function public.llmtally_audit_change();
-- A user's counters change on every call: only the deletion of a user is logged.
create trigger user_profiles_audit_delete after delete on public.user_profiles
    for each row execute function public.llmtally_audit_change();
