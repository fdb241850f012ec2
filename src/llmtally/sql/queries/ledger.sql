-- The write path (llmtally.ledger): staging, ingest, users and sessions, quarantine. A line "-- name --"
-- starts a query.

-- create_stage --
-- A batch of events lands here by COPY, then moves to request_logs in one statement. The stage is typed
-- (of llmtally_event), so it lasts only its transaction: a typed table living on in a connection would
-- stop a migration from altering the type. Only batches the fast path cannot take come this way.
create temp table llmtally_stage of public.llmtally_event on commit drop

-- copy_stage --
copy llmtally_stage (seq, user_profile_id, end_user, session_id, litellm_call_id, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, messages, response, status,
    error, error_type, latency_ms, stream, metadata, created_at, call_key, attempt_key, trace_id, model_group,
    model_id, api_base, cache_hit, saved_cost, usage_source, cached_tokens, cache_creation_tokens,
    reasoning_tokens, audio_tokens, content_truncated, content_original_bytes, first_token_ms) from stdin

-- insert_from_stage --
-- The insert itself (user from the session map, custom prices, on conflict do nothing) is the
-- function of migration 0002, shared with the Supabase API path (llmtally_ingest).
select public.llmtally_insert_events(array(select s::public.llmtally_event from llmtally_stage s))

-- line_stage_ready --
-- The fast path's stage lives as long as the server connection (emptied at every commit), so a batch
-- neither creates nor drops a table: whether this connection has it is asked inside the batch's own
-- transaction, which is right behind a transaction-mode pooler too (another client's stage on the same
-- server connection is empty at the start of every transaction). A batch of a few events is planned
-- once per connection (a generic plan); a larger one keeps the server's choice. Measured against a stage
-- made and dropped by every batch: 1.44 to 1.85 times the events per second in one-event batches, 0.99 to
-- 1.06 in batches of 500 (docs/benchmarks.md, "A stage per connection, against a stage per batch").
select pg_catalog.to_regclass('pg_temp.llmtally_line_stage') is not null as ready,
       pg_catalog.set_config('plan_cache_mode',
                             case when %(few)s then 'force_generic_plan'
                                  else pg_catalog.current_setting('plan_cache_mode') end,
                             true) as plan_cache_mode

-- create_line_stage --
-- Spool records (JSON lines written by llmtally.ledger.spool.encode) land here by COPY as they are, with
-- their place in the batch, and PostgreSQL reads their fields; Python neither decodes nor re-encodes them.
create temp table llmtally_line_stage (seq integer not null, r jsonb not null) on commit delete rows

-- line_stage_storage --
-- A record with content is larger than TOAST's 2 kB threshold: by default the stage would compress it,
-- and request_logs would compress the extracted content again. Stored out of line uncompressed here, the
-- content is compressed once (measured: 1.7 times the batches per second of compressing in the stage).
alter table llmtally_line_stage alter column r set storage external

-- copy_line_stage --
copy llmtally_line_stage (seq, r) from stdin

-- insert_from_line_stage --
-- The same rows as event_row() in ledger/writer.py builds from a decoded record, for records that
-- PostgreSQL accepts as jsonb (NUL, lone surrogates and NaN make the batch take the Python path).
select public.llmtally_insert_events(array(
    select row(s.seq,
               nullif(s.r ->> 'user', ''),
               s.r ->> 'end_user',
               s.r ->> 'session',
               s.r ->> 'id',
               coalesce(nullif(s.r ->> 'model', ''), 'unknown'),
               coalesce(nullif(s.r ->> 'provider', ''), 'unknown'),
               greatest(0, t.pt),
               greatest(0, t.ct),
               greatest(0, case when t.tt is not null and t.tt >= t.pt + t.ct then t.tt else t.pt + t.ct end),
               (s.r ->> 'c')::numeric,
               s.r ->> 'cs',
               case when %(store_content)s then nullif(s.r -> 'messages', 'null'::jsonb) end,
               case when %(store_content)s then nullif(s.r -> 'response', 'null'::jsonb) end,
               s.r ->> 'status',
               s.r ->> 'error',
               s.r ->> 'error_type',
               case when s.r ->> 'latency' is not null then greatest(0, (s.r ->> 'latency')::integer) end,
               coalesce((s.r ->> 'stream')::boolean, false),
               case when jsonb_typeof(s.r -> 'meta') = 'object' then s.r -> 'meta'
                    when coalesce(jsonb_typeof(s.r -> 'meta'), 'null') = 'null' then '{}'::jsonb
                    else jsonb_build_object('value', s.r -> 'meta') end,
               case when s.r ->> 'at' ~ '([+-][0-9]{2}(:?[0-9]{2})?|Z)$' then (s.r ->> 'at')::timestamptz
                    else (s.r ->> 'at')::timestamp at time zone 'UTC' end,
               -- migration 0009; a record written before it has none of these: the defaults apply
               s.r ->> 'key',
               s.r ->> 'ak',
               s.r ->> 'trace',
               s.r ->> 'group',
               s.r ->> 'mid',
               s.r ->> 'base',
               coalesce((s.r ->> 'hit')::boolean, false),
               case when jsonb_typeof(s.r -> 'saved') = 'number' and (s.r ->> 'saved')::numeric >= 0
                    then round((s.r ->> 'saved')::numeric, 12) end,
               coalesce(s.r ->> 'src', 'provider'),
               greatest(0, coalesce((s.r ->> 'cat')::integer, 0)),
               greatest(0, coalesce((s.r ->> 'ccr')::integer, 0)),
               greatest(0, coalesce((s.r ->> 'rt')::integer, 0)),
               greatest(0, coalesce((s.r ->> 'aud')::integer, 0)),
               -- migration 0015: the truncated-content flag as fields, not a key in metadata
               coalesce((s.r ->> 'trunc')::boolean, false),
               case when coalesce((s.r ->> 'trunc')::boolean, false)
                    then greatest(0, (s.r ->> 'orig')::bigint) end,
               -- migration 0020: a stream's time to its first chunk
               case when s.r ->> 'ft' is not null then greatest(0, (s.r ->> 'ft')::integer) end
           )::public.llmtally_event
      from llmtally_line_stage s
     cross join lateral (select coalesce((s.r ->> 'pt')::integer, 0) as pt,
                                coalesce((s.r ->> 'ct')::integer, 0) as ct,
                                (s.r ->> 'tt')::integer as tt) t
     order by s.seq))

-- upsert_user --
select public.llmtally_upsert_user(%(user_id)s, %(email)s, %(full_name)s, %(provider)s)

-- link_session --
select public.llmtally_link_session(%(session_id)s, %(user_id)s)

-- quarantine_insert --
insert into public.quarantine (litellm_call_id, reason, raw_event, raw_bytes) values (%s, %s, %s, %s)

-- list_quarantine --
select id, litellm_call_id, reason, raw_bytes, attempts, created_at from public.quarantine
 order by id limit %s

-- quarantined_events --
-- Every quarantined event (%(ids)s null), or those of the ids given.
select id, raw_event from public.quarantine
 where %(ids)s::bigint[] is null or id = any(%(ids)s)
 order by id

-- quarantine_still_refused --
update public.quarantine set attempts = attempts + 1, retried_at = now(), reason = %s where id = %s

-- quarantine_release --
delete from public.quarantine where id = %s
