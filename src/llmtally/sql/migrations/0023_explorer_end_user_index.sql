-- llmtally 0023: the request explorer's end-user filter (the member behind a team key's call, the
-- Proxy's end user). Without an index the planner reads the whole of request_logs for an end user with
-- few calls in the period: 320 to 670 ms at 1 M rows (docs/benchmarks.md, part 6), and ten times that at
-- 10 M. This index gives one end user's calls of the period in order, as request_logs_user_created_idx
-- does for a user. A call without an end user (the SDK without `user=`, the Proxy without an end user)
-- is left out: the filter never asks for one.

create index if not exists request_logs_end_user_created_idx
    on public.request_logs (end_user, created_at desc, id desc)
    where end_user is not null;
