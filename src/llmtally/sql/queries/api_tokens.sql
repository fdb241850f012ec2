-- API tokens (llmtally.api_tokens). A line "-- name --" starts a query.

-- create_api_token --
insert into public.api_tokens (user_id, name, token_hash, prefix, expires_at, models, end_users)
values (%(user_id)s, %(name)s, %(token_hash)s, %(prefix)s, %(expires_at)s, %(models)s, %(end_users)s)
returning id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at, models, end_users

-- list_api_tokens --
select id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at, models, end_users
  from public.api_tokens
 where (%(user_id)s::text is null or user_id = %(user_id)s::text)
 order by created_at desc, id desc

-- revoke_api_token --
update public.api_tokens set revoked_at = now()
 where (id::text = %(key)s or prefix = %(key)s) and revoked_at is null
returning id, user_id, name, prefix, created_at, expires_at, revoked_at, last_used_at, models

-- check_api_token --
-- The token's owner and allowed models when it is valid; last_used_at is refreshed at most once a minute.
-- Read first, written only when stale: a check within the minute writes nothing (no row version, no WAL
-- record, no flush at commit), so a key used on every request costs one index lookup.
with valid as (
    select t.id, t.user_id, t.models, t.end_users, t.last_used_at
      from public.api_tokens t
     where t.token_hash = %(token_hash)s and t.revoked_at is null and (t.expires_at is null or t.expires_at > now())
), touched as (
    update public.api_tokens t set last_used_at = now()
      from valid v
     where t.id = v.id and (v.last_used_at is null or v.last_used_at < now() - interval '1 minute')
)
select user_id, models, end_users from valid

-- removed_password_tokens --
-- Active API tokens of password logins that LLMTALLY_USERS no longer names (kept: a token is revoked only
-- by `llmtally tokens revoke` or `llmtally users revoke-sessions --tokens`).
select user_id, count(*) as tokens from public.api_tokens
 where user_id like 'password\_%%' and revoked_at is null and (expires_at is null or expires_at > now())
   and not (user_id = any(%(kept)s::text[]))
 group by user_id order by user_id

-- revoke_user_api_tokens --
update public.api_tokens set revoked_at = now()
 where user_id = %(user_id)s and revoked_at is null
