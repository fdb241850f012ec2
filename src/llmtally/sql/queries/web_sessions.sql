-- Login sessions of the web app (llmtally.web_sessions). A line "-- name --" starts a query.

-- create_web_session --
-- A login's session; expired rows of the past week are swept as new ones are made.
with swept as (delete from public.web_sessions where expires_at < now() - interval '7 days')
insert into public.web_sessions (user_id, provider, expires_at)
values (%(user_id)s, %(provider)s, now() + make_interval(secs => %(lifetime_seconds)s))
returning id::text as id, expires_at

-- active_web_session --
-- The session when it is the user's and neither revoked nor expired.
select expires_at from public.web_sessions
 where id = %(session_id)s::uuid and user_id = %(user_id)s and revoked_at is null and expires_at > now()

-- revoke_web_session --
update public.web_sessions set revoked_at = now(), revoked_why = %(why)s
 where id = %(session_id)s::uuid and revoked_at is null

-- revoke_user_web_sessions --
update public.web_sessions set revoked_at = now(), revoked_why = %(why)s
 where user_id = %(user_id)s and revoked_at is null and expires_at > now()

-- revoke_removed_password_sessions --
-- Sessions of password logins that LLMTALLY_USERS no longer names.
update public.web_sessions set revoked_at = now(), revoked_why = 'login removed'
 where provider = 'password' and revoked_at is null and expires_at > now()
   and not (user_id = any(%(kept)s::text[]))
returning user_id
