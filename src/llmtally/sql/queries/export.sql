-- Exports of request_logs (llmtally.export). A line "-- name --" starts a query.

-- export_requests --
-- Streamed through a server-side cursor; the period reads request_logs_created_idx.
select id, created_at, user_profile_id, end_user, session_id, litellm_call_id, model, provider, status,
       prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, latency_ms, first_token_ms,
       stream, error_type, error, metadata::text as metadata, messages::text as messages, response::text as response
  from public.request_logs
 where (%(since)s::date is null or created_at >= %(since)s::date::timestamp at time zone 'UTC')
   and (%(until)s::date is null or created_at < %(until)s::date::timestamp at time zone 'UTC')
   and (%(user_id)s::text is null or user_profile_id = %(user_id)s::text)
   and (%(end_user)s::text is null or end_user = %(end_user)s::text)
 order by created_at, id

-- count_export --
select count(*) as n
  from public.request_logs
 where (%(since)s::date is null or created_at >= %(since)s::date::timestamp at time zone 'UTC')
   and (%(until)s::date is null or created_at < %(until)s::date::timestamp at time zone 'UTC')
   and (%(user_id)s::text is null or user_profile_id = %(user_id)s::text)
   and (%(end_user)s::text is null or end_user = %(end_user)s::text)
