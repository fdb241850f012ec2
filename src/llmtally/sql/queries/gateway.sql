-- The gateway (llmtally.app.gateway). A line "-- name --" starts a query.

-- gateway_owned_response --
-- Whether a call billed to this user (or team) made the response with this id. metadata.response_id is
-- set from the provider's response by the LiteLLM callback, whatever the content mode (the stored
-- response may be cut, masked, cleared or absent). Run as the user, under row-level security, and
-- filtered by the user as well; one probe of request_logs_response_id_idx (migration 0024).
select true as owned
  from public.request_logs
 where metadata ->> 'response_id' = %(response_id)s and user_profile_id = %(user_id)s
 limit 1
