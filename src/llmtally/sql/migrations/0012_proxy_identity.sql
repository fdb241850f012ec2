-- llmtally 0010: the LiteLLM Proxy's team and key alias as columns of request_logs.
--
-- The proxy plug-in (llmtally.proxy) stores the authenticated key's team and alias in the row's metadata
-- (keys team_id and key_alias, which it never takes from the client). Generated columns make them
-- columns a breakdown can group by and an index can serve, with no change to the write path: the ingest
-- function keeps writing metadata, and PostgreSQL computes these from it in the same statement.
-- Rows written by the SDK path have them only if the application put those keys in its metadata.
-- Counters and rollups are not kept by team or key: a breakdown reads request_logs through these indexes.

alter table public.request_logs
    add column team_id   text generated always as (nullif(metadata ->> 'team_id', '')) stored,
    add column key_alias text generated always as (nullif(metadata ->> 'key_alias', '')) stored;

create index request_logs_team_created_idx on public.request_logs (team_id, created_at desc)
    where team_id is not null;
create index request_logs_key_alias_created_idx on public.request_logs (key_alias, created_at desc)
    where key_alias is not null;
