"""A database shaped like a fresh Supabase project, before any of our migrations run.

What Supabase provides and llmtally depends on, as Supabase's own init scripts and Auth (GoTrue)
migrations create it:

- roles ``anon`` and ``authenticated`` (NOLOGIN NOINHERIT), ``service_role`` (NOLOGIN NOINHERIT
  BYPASSRLS), ``authenticator`` (LOGIN NOINHERIT, member of the three: PostgREST logs in as it and
  switches role per request) and ``supabase_auth_admin`` (the Auth server's role, owner of ``auth``);
- schema ``auth`` with ``auth.users`` and Auth's current ``auth.uid()``, ``auth.role()``,
  ``auth.email()`` and ``auth.jwt()``; schema ``extensions``;
- the default privileges that grant every new table, function and sequence in ``public`` to
  ``anon``, ``authenticated`` and ``service_role``.

Roles are cluster-wide and the plain migration creates ``anon``/``authenticated``/``service_role``
too (with the same attributes), so roles are created only where missing, tolerating a concurrent
creation by another database in the same cluster.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

ROLES = """
do $$
declare
    spec text[];
begin
    foreach spec slice 1 in array array[
        ['anon', 'nologin noinherit'],
        ['authenticated', 'nologin noinherit'],
        ['service_role', 'nologin noinherit bypassrls'],
        ['authenticator', 'login noinherit'],
        ['supabase_auth_admin', 'login noinherit createrole']
    ] loop
        if not exists (select from pg_roles where rolname = spec[1]) then
            begin
                execute format('create role %I %s', spec[1], spec[2]);
            exception when duplicate_object or unique_violation then
                null;  -- created concurrently by a test of another database in this cluster
            end;
        end if;
    end loop;
    foreach spec slice 1 in array array[['anon'], ['authenticated'], ['service_role']] loop
        if not pg_has_role('authenticator', spec[1], 'MEMBER') then
            begin
                execute format('grant %I to authenticator', spec[1]);
            exception when unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;
"""

# One database: schemas, auth objects and default privileges (Supabase's init scripts and the Auth
# server's migrations, trimmed to what a project's own SQL can see and use).
DATABASE = """
create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;

create schema auth authorization supabase_auth_admin;
grant usage on schema auth to anon, authenticated, service_role;

create table auth.users (
    instance_id          uuid,
    id                   uuid not null primary key,
    aud                  varchar(255),
    role                 varchar(255),
    email                varchar(255),
    encrypted_password   varchar(255),
    email_confirmed_at   timestamptz,
    invited_at           timestamptz,
    confirmation_token   varchar(255),
    confirmation_sent_at timestamptz,
    recovery_token       varchar(255),
    recovery_sent_at     timestamptz,
    last_sign_in_at      timestamptz,
    raw_app_meta_data    jsonb,
    raw_user_meta_data   jsonb,
    is_super_admin       boolean,
    created_at           timestamptz,
    updated_at           timestamptz,
    phone                text unique,
    phone_confirmed_at   timestamptz,
    banned_until         timestamptz,
    deleted_at           timestamptz,
    is_sso_user          boolean not null default false,
    is_anonymous         boolean not null default false
);
create index users_instance_id_idx on auth.users (instance_id);
alter table auth.users enable row level security;

create function auth.uid() returns uuid set search_path to '' as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$func$ language sql stable;

create function auth.role() returns text set search_path to '' as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.role', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
    )::text
$func$ language sql stable;

create function auth.email() returns text set search_path to '' as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim.email', true), ''),
      (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
    )::text
$func$ language sql stable;

create function auth.jwt() returns jsonb set search_path to '' as $func$
  select
    coalesce(
      nullif(current_setting('request.jwt.claim', true), ''),
      nullif(current_setting('request.jwt.claims', true), '')
    )::jsonb
$func$ language sql stable;

alter table auth.users owner to supabase_auth_admin;
alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
grant all on auth.users to current_user;  -- Supabase's postgres role, which runs a project's migrations
grant select on auth.users to service_role;

grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
"""


def shape_like_supabase(url: str, *, owner: str | None = None) -> None:
    """Turn the empty database at ``url`` into a fresh Supabase project (connect as a superuser).

    ``owner``: the role that will run the migrations, as Supabase's ``postgres`` (not a superuser):
    it gets Supabase's default privileges and its privileges on ``auth.users``. By default, the
    connecting role.
    """
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ROLES)
        conn.execute(DATABASE)
        if owner is not None:
            conn.execute(
                sql.SQL(
                    "grant all on auth.users to {o};"
                    " alter default privileges for role {o} in schema public"
                    "   grant all on tables to anon, authenticated, service_role;"
                    " alter default privileges for role {o} in schema public"
                    "   grant all on functions to anon, authenticated, service_role;"
                    " alter default privileges for role {o} in schema public"
                    "   grant all on sequences to anon, authenticated, service_role"
                ).format(o=sql.Identifier(owner))
            )
