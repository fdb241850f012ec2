-- The database package itself (llmtally.db): per-user transactions, the embedded server, health.
-- A line "-- name --" starts a query.

-- act_as --
-- What PostgREST does per request: the role and the JWT claims, for this transaction only.
select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)

-- set_actor --
-- Who this transaction acts for (llmtally.db.acting_as): the audit log's triggers read it.
select set_config('llmtally.actor', %s, true)

-- database_exists --
select 1 from pg_database where datname = %s

-- create_database --
-- {name}: an identifier, composed with psycopg.sql by llmtally.db.embedded (a statement cannot take it
-- as a parameter).
create database {name}

-- health_check --
select 1 as ok

-- auth_linked_profiles --
select count(*) as n from public.user_profiles where auth_user_id is not null
