-- llmtally 0019: the dashboard's cost by tag. Tags come with a call's metadata (`metadata.tags`, which
-- the gateway fills from the request's metadata.tags and its x-llmtally-tags header). A partial index
-- of the tagged calls by time lets the breakdown of a period read only those calls, however many
-- untagged ones the period holds.

create index request_logs_tagged_idx on public.request_logs (created_at) where metadata ? 'tags';
