-- llmtally 0021: refused calls, counted. A call that a hard budget or a rate limit refuses never reaches
-- LiteLLM, so it has no row in request_logs; until now only each process's /metrics counted it, lost at
-- every restart and split across processes. The reservation now counts a refusal in this table in the
-- same statement that refuses it (the named query `reserve`), under the same per-user lock: one row per
-- UTC day x user x reason (budget, unpriced, rpm, tpm) x model, so the dashboard shows any period's
-- refusals, from every process. A deleted user's rows go with them (llmtally.privacy).
-- Only the server (service_role, the owner) reads or writes it.

create table public.refusals (
    day      date not null,
    user_id  text not null check (user_id <> ''),
    reason   text not null check (reason <> ''),
    model    text not null,
    refused  integer not null default 0 check (refused >= 0),
    last_at  timestamptz not null default now() constraint refusals_last_at_finite check (isfinite(last_at)),
    constraint refusals_day_finite check (isfinite(day)),
    primary key (day, user_id, reason, model)
);
create index refusals_user_idx on public.refusals (user_id);
comment on table public.refusals is
    'Calls refused by a hard budget or a rate limit before reaching a provider, by UTC day, user, reason, model.';

alter table public.refusals enable row level security;
-- No policy: only the server (table owner, service_role) reads or writes it.
revoke all on table public.refusals from public, anon, authenticated;
grant select, insert, update, delete on table public.refusals to service_role;
