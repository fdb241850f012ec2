-- The audit log (llmtally.audit): who changed budgets, limits, prices, tokens, users. Written by the
-- triggers of migration 0017; read here, newest first.
-- A line "-- name --" starts a query.

-- audit_entries --
-- A page of the log, newest first: entries older than %(before)s (null: the newest), of one subject
-- or actor when given.
select id, at, actor, action, object, subject, before, after
  from public.audit_log
 where (%(before)s::bigint is null or id < %(before)s)
   and (%(who)s::text is null or actor = %(who)s or subject = %(who)s or subject like %(who)s || ' %%'
        or subject like '%% of ' || %(who)s)
 order by id desc
 limit %(limit)s
