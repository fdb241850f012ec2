-- llmtally: link user_profiles to Supabase Auth (optional; for apps whose users sign in with Supabase Auth).
--
-- Not one of the numbered migrations: plain PostgreSQL has no auth.users. Apply it after them with
-- `llmtally supabase link-auth`, or add it to a Supabase project's migrations with
-- `llmtally supabase export --with-auth-link`. Running it again changes nothing.
--
-- Every auth.users row gets a profile whose user_id is the Supabase user's id as text, which is the
-- `sub` claim of the user's JWT and auth.uid()::text. The read policies of migration 0001
-- (user_id = (select auth.jwt()) ->> 'sub') therefore let each Supabase user read exactly their own
-- rows, with no new policy. Record calls with metadata {"user_profile_id": <the user's id>}.
--
-- - user_profiles.auth_user_id references auth.users (id).
-- - Triggers on auth.users create the profile when the user signs up, refresh email, name, provider
--   and last sign-in when they change, and delete the profile with the user: its sessions and
--   rollup rows go too; its request_logs rows stay, without a user, and count in the anonymous
--   rollup. Existing users get their profiles now.
-- - The trigger functions are security definer: they run when the Auth server (role
--   supabase_auth_admin) writes auth.users, and that role has no privileges on llmtally's tables
--   and should get none (a plain `on delete cascade` would run llmtally's counter trigger as that
--   role, and fail). They have a fixed search_path and no client role may execute them.

do $$
begin
    if to_regclass('auth.users') is null then
        raise exception 'llmtally: auth.users does not exist: the auth link is for Supabase projects that use Supabase Auth';
    end if;
    if to_regclass('public.user_profiles') is null then
        raise exception 'llmtally: public.user_profiles does not exist: run the llmtally migrations first';
    end if;
end
$$;

alter table public.user_profiles add column if not exists auth_user_id uuid;
comment on column public.user_profiles.auth_user_id is 'The Supabase Auth user of this profile (user_id = auth_user_id::text).';

do $$
begin
    if not exists (select from pg_catalog.pg_constraint
                    where conrelid = 'public.user_profiles'::regclass and conname = 'user_profiles_auth_user_id_fkey') then
        alter table public.user_profiles add constraint user_profiles_auth_user_id_fkey
            foreign key (auth_user_id) references auth.users (id) on delete set null;
    end if;
    if not exists (select from pg_catalog.pg_constraint
                    where conrelid = 'public.user_profiles'::regclass and conname = 'user_profiles_auth_user_id_check') then
        alter table public.user_profiles add constraint user_profiles_auth_user_id_check
            check (auth_user_id is null or user_id = auth_user_id::text);
    end if;
end
$$;
create unique index if not exists user_profiles_auth_user_id_key on public.user_profiles (auth_user_id);

create or replace function public.llmtally_sync_auth_user() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    insert into public.user_profiles as p (user_id, auth_user_id, email, full_name, provider, last_seen_at)
    values (new.id::text, new.id, new.email,
            coalesce(new.raw_user_meta_data ->> 'full_name', new.raw_user_meta_data ->> 'name'),
            new.raw_app_meta_data ->> 'provider', new.last_sign_in_at)
    on conflict (user_id) do update set
        auth_user_id = excluded.auth_user_id,
        email        = coalesce(excluded.email, p.email),
        full_name    = coalesce(excluded.full_name, p.full_name),
        provider     = coalesce(excluded.provider, p.provider),
        last_seen_at = greatest(p.last_seen_at, excluded.last_seen_at);
    return null;
end
$$;
comment on function public.llmtally_sync_auth_user() is
    'Trigger on auth.users: keeps a user_profiles row for every Supabase Auth user (llmtally auth link).';
revoke all on function public.llmtally_sync_auth_user() from public, anon, authenticated;

create or replace function public.llmtally_delete_auth_user() returns trigger
    language plpgsql
    security definer
    set search_path = ''
as $$
begin
    delete from public.user_profiles where user_id = old.id::text;
    return null;
end
$$;
comment on function public.llmtally_delete_auth_user() is
    'Trigger on auth.users: deletes the profile of a deleted Supabase Auth user (llmtally auth link).';
revoke all on function public.llmtally_delete_auth_user() from public, anon, authenticated;

drop trigger if exists llmtally_auth_user_created on auth.users;
create trigger llmtally_auth_user_created
    after insert on auth.users
    for each row execute function public.llmtally_sync_auth_user();

drop trigger if exists llmtally_auth_user_updated on auth.users;
create trigger llmtally_auth_user_updated
    after update of email, raw_user_meta_data, raw_app_meta_data, last_sign_in_at on auth.users
    for each row execute function public.llmtally_sync_auth_user();

drop trigger if exists llmtally_auth_user_deleted on auth.users;
create trigger llmtally_auth_user_deleted
    after delete on auth.users
    for each row execute function public.llmtally_delete_auth_user();

-- The users who signed up before the link.
insert into public.user_profiles as p (user_id, auth_user_id, email, full_name, provider, last_seen_at)
select u.id::text, u.id, u.email,
       coalesce(u.raw_user_meta_data ->> 'full_name', u.raw_user_meta_data ->> 'name'),
       u.raw_app_meta_data ->> 'provider', u.last_sign_in_at
  from auth.users u
on conflict (user_id) do update set
    auth_user_id = excluded.auth_user_id,
    email        = coalesce(excluded.email, p.email),
    full_name    = coalesce(excluded.full_name, p.full_name),
    provider     = coalesce(excluded.provider, p.provider),
    last_seen_at = greatest(p.last_seen_at, excluded.last_seen_at);
