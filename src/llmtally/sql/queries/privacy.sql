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

-- merge_usage_daily_into_anonymous --
-- The user's usage_daily rows left from calls that retention already removed, deleted and added to the
-- anonymous rows (user_id null) of the same key: every additive measure of the rollup.
with gone as (delete from public.usage_daily where user_id = %(u)s returning *)
insert into public.usage_daily as t (user_id, day, model, provider,
    requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
    unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests,
    cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
select null, day, model, provider,
       requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
       unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests,
       cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost
  from gone where requests > 0
on conflict on constraint usage_daily_key do update set
    requests = t.requests + excluded.requests, successes = t.successes + excluded.successes,
    failures = t.failures + excluded.failures, cancelled = t.cancelled + excluded.cancelled,
    prompt_tokens = t.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = t.completion_tokens + excluded.completion_tokens,
    tokens = t.tokens + excluded.tokens, cost = t.cost + excluded.cost,
    unpriced_requests = t.unpriced_requests + excluded.unpriced_requests,
    latency_ms_sum = t.latency_ms_sum + excluded.latency_ms_sum,
    attempts = t.attempts + excluded.attempts,
    failed_attempts = t.failed_attempts + excluded.failed_attempts,
    cache_hits = t.cache_hits + excluded.cache_hits,
    estimated_requests = t.estimated_requests + excluded.estimated_requests,
    cached_tokens = t.cached_tokens + excluded.cached_tokens,
    cache_creation_tokens = t.cache_creation_tokens + excluded.cache_creation_tokens,
    reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens,
    audio_tokens = t.audio_tokens + excluded.audio_tokens,
    saved_cost = t.saved_cost + excluded.saved_cost

-- merge_usage_monthly_into_anonymous --
-- The user's usage_monthly rows left from calls that retention already removed, deleted and added to the
-- anonymous rows (user_id null) of the same key: every additive measure of the rollup.
with gone as (delete from public.usage_monthly where user_id = %(u)s returning *)
insert into public.usage_monthly as t (user_id, month, model, provider,
    requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
    unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests,
    cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
select null, month, model, provider,
       requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
       unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests,
       cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost
  from gone where requests > 0
on conflict on constraint usage_monthly_key do update set
    requests = t.requests + excluded.requests, successes = t.successes + excluded.successes,
    failures = t.failures + excluded.failures, cancelled = t.cancelled + excluded.cancelled,
    prompt_tokens = t.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = t.completion_tokens + excluded.completion_tokens,
    tokens = t.tokens + excluded.tokens, cost = t.cost + excluded.cost,
    unpriced_requests = t.unpriced_requests + excluded.unpriced_requests,
    latency_ms_sum = t.latency_ms_sum + excluded.latency_ms_sum,
    attempts = t.attempts + excluded.attempts,
    failed_attempts = t.failed_attempts + excluded.failed_attempts,
    cache_hits = t.cache_hits + excluded.cache_hits,
    estimated_requests = t.estimated_requests + excluded.estimated_requests,
    cached_tokens = t.cached_tokens + excluded.cached_tokens,
    cache_creation_tokens = t.cache_creation_tokens + excluded.cache_creation_tokens,
    reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens,
    audio_tokens = t.audio_tokens + excluded.audio_tokens,
    saved_cost = t.saved_cost + excluded.saved_cost

-- merge_usage_monthly_users_into_anonymous --
-- The user's usage_monthly_users rows left from calls that retention already removed, deleted and added to the
-- anonymous rows (user_id null) of the same key: every additive measure of the rollup.
with gone as (delete from public.usage_monthly_users where user_id = %(u)s returning *)
insert into public.usage_monthly_users as t (user_id, month,
    requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
    unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests,
    cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost)
select null, month,
       requests, successes, failures, cancelled, prompt_tokens, completion_tokens, tokens, cost,
       unpriced_requests, latency_ms_sum, attempts, failed_attempts, cache_hits, estimated_requests,
       cached_tokens, cache_creation_tokens, reasoning_tokens, audio_tokens, saved_cost
  from gone where requests > 0
on conflict on constraint usage_monthly_users_key do update set
    requests = t.requests + excluded.requests, successes = t.successes + excluded.successes,
    failures = t.failures + excluded.failures, cancelled = t.cancelled + excluded.cancelled,
    prompt_tokens = t.prompt_tokens + excluded.prompt_tokens,
    completion_tokens = t.completion_tokens + excluded.completion_tokens,
    tokens = t.tokens + excluded.tokens, cost = t.cost + excluded.cost,
    unpriced_requests = t.unpriced_requests + excluded.unpriced_requests,
    latency_ms_sum = t.latency_ms_sum + excluded.latency_ms_sum,
    attempts = t.attempts + excluded.attempts,
    failed_attempts = t.failed_attempts + excluded.failed_attempts,
    cache_hits = t.cache_hits + excluded.cache_hits,
    estimated_requests = t.estimated_requests + excluded.estimated_requests,
    cached_tokens = t.cached_tokens + excluded.cached_tokens,
    cache_creation_tokens = t.cache_creation_tokens + excluded.cache_creation_tokens,
    reasoning_tokens = t.reasoning_tokens + excluded.reasoning_tokens,
    audio_tokens = t.audio_tokens + excluded.audio_tokens,
    saved_cost = t.saved_cost + excluded.saved_cost

-- delete_user_reservations --
delete from public.budget_reservations where user_id = %s

-- delete_user_rate_log --
delete from public.rate_limit_log where user_id = %s

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
-- %s: a LIKE pattern of the user id as JSON, escaped.
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
