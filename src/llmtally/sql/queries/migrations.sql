-- Applying the numbered migrations (llmtally.db.migrations). A line "-- name --" starts a query.

-- migrations_table_exists --
select to_regclass('public.llmtally_migrations') is not null

-- create_migrations_table --
create table if not exists public.llmtally_migrations (
    version    integer primary key,
    name       text not null,
    checksum   text not null,
    applied_at timestamptz not null default now()
);
alter table public.llmtally_migrations enable row level security;
revoke all on table public.llmtally_migrations from public

-- supabase_history_readable --
-- Whether the Supabase CLI's migration history exists, can be read and has its name column.
select coalesce(has_table_privilege(t.oid, 'select'), false)
   and exists (select from pg_attribute where attrelid = t.oid and attname = 'name' and not attisdropped)
  from (select to_regclass('supabase_migrations.schema_migrations') as oid) t

-- supabase_pushed_versions --
-- The versions of our migrations the Supabase CLI pushed (both parameters: the pattern of their names).
select substring(name from %s) from supabase_migrations.schema_migrations where name ~ %s

-- applied_migrations --
select version, checksum from public.llmtally_migrations

-- migration_lock --
select pg_advisory_xact_lock(%s)

-- check_constraints_at_each_statement --
set constraints all immediate

-- record_migration --
insert into public.llmtally_migrations (version, name, checksum) values (%s, %s, %s)
