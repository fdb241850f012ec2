-- Deleting a user's personal data and retention (llmtally.privacy, llmtally.ledger.retention). A line
-- "-- name --" starts a query.

-- privacy_known_user --
-- Anything that names the user: a profile, a chat user, a chat thread.
select (select count(*) from public.user_profiles where user_id = %(u)s)
     + (select count(*) from chat.users where identifier = %(u)s)
     + (select count(*) from chat.threads where user_identifier = %(u)s) as n

-- anonymise_user_calls --
-- One batch of the user's calls becomes anonymous usage; the statement-level trigger moves their usage
-- from the user's counters and rollup rows to the anonymous ones.
update public.request_logs set user_profile_id = null, end_user = null, session_id = null,
       messages = null, response = null, error = null, metadata = '{}'::jsonb
 where id in (select id from public.request_logs
               where user_profile_id = %(u)s or end_user = %(u)s limit %(batch)s)

-- anonymise_user_attempts --
-- The attempts of those calls: no user, no end user, no error text (it may quote the prompt).
update public.request_attempts set user_profile_id = null, end_user = null, error = null
 where id in (select id from public.request_attempts
               where user_profile_id = %(u)s or end_user = %(u)s limit %(batch)s)

-- merge_into_anonymous --
-- The user's rollup rows left from calls that retention already removed, added to the anonymous rows
-- of the same keys (the function is written from the counter set by migration 0015).
select public.llmtally_merge_into_anonymous(%(u)s)

-- delete_user_reservations --
delete from public.budget_reservations where user_id = %s

-- delete_user_rate_log --
delete from public.rate_limit_log where user_id = %s

-- delete_user_refusals --
delete from public.refusals where user_id = %s

-- delete_user_sessions --
delete from public.sessions where user_id = %s

-- delete_user_web_sessions --
delete from public.web_sessions where user_id = %s

-- delete_user_threads --
delete from chat.threads
 where user_identifier = %(u)s or user_id in (select id from chat.users where identifier = %(u)s)

-- delete_chat_user --
delete from chat.users where identifier = %s

-- delete_user_quarantine --
-- The pattern: the user id as JSON, escaped for LIKE.
delete from public.quarantine where raw_event like %s

-- delete_user_profile --
delete from public.user_profiles where user_id = %s

-- period_budgets_count --
select count(*) as n from public.budgets where period <> 'lifetime'

-- retention_delete_calls --
delete from public.request_logs
 where id in (select id from public.request_logs
               where created_at < now() - make_interval(days => %(d)s) limit %(batch)s)

-- retention_delete_quarantine --
delete from public.quarantine where created_at < now() - make_interval(days => %s)

-- retention_clear_content --
update public.request_logs set messages = null, response = null
 where id in (select id from public.request_logs
               where created_at < now() - make_interval(days => %(d)s)
                 and (messages is not null or response is not null)
               limit %(batch)s)
