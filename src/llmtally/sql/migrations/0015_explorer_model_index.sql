-- llmtally 0015: the request explorer's model filter. Filtering /admin/requests by one model read the
-- period along request_logs_created_idx and dropped the other models' rows: 400 ms for a model with a
-- few percent of the calls of 30 days at 1 M rows (docs/benchmarks.md, part 6). This index gives that
-- model's calls of the period in order. The other filters already have theirs: user
-- (request_logs_user_created_idx), failures (request_logs_failures_idx), estimated usage
-- (request_logs_estimated_idx), the period (request_logs_created_idx).

create index if not exists request_logs_model_created_idx
    on public.request_logs (model, created_at desc, id desc);
