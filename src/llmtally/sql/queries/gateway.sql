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

-- admit_keyed_call --
-- A call made with an API token, admitted in one statement (llmtally.admission): the token checked as
-- check_api_token does (last_used_at refreshed at most once a minute), its allow-list asked for the
-- model, and, only when both pass, the call's worst case reserved for the token's user (or team) as
-- reserve does (a refusal counted in refusals, the commit without waiting for the WAL flush). No row:
-- the token is unknown, revoked or expired. permitted false: the token may not use the model, and
-- nothing was reserved. Run as a statement of its own (autocommit): one round trip.
with async_commit as (
    select pg_catalog.set_config('synchronous_commit', 'off', true)
), valid as (
    select t.id, t.user_id, t.models, t.end_users, t.last_used_at
      from public.api_tokens t
     where t.token_hash = %(token_hash)s and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())
), touched as (
    update public.api_tokens t set last_used_at = now()
      from valid v
     where t.id = v.id and (v.last_used_at is null or v.last_used_at < now() - interval '1 minute')
), permitted as (
    select v.user_id from valid v where v.models is null or %(model_group)s = any(v.models)
), decision as (
    select d.*
      from permitted p
     cross join lateral public.llmtally_reserve(p.user_id, %(call_id)s, %(model)s, %(provider)s,
                                                %(prompt_tokens)s, %(completion_tokens)s, %(usd)s, %(ttl_s)s,
                                                now()) d
), counted as (
    insert into public.refusals as r (day, user_id, reason, model, refused, last_at)
    select (now() at time zone 'UTC')::date, p.user_id, d.reason, coalesce(%(model)s, ''), 1, now()
      from decision d cross join permitted p
     where not d.allowed
    on conflict (day, user_id, reason, model) do update
       set refused = r.refused + 1, last_at = greatest(r.last_at, excluded.last_at)
)
select v.user_id, v.models, v.end_users, exists (select from permitted) as permitted, d.*
  from valid v
  left join decision d on true
 cross join async_commit
