-- llmtally 0022: teams. A team is billed like a user: its id (`team:SLUG`) is a row of user_profiles,
-- so everything that holds for a user holds for it with no second code path: its counters and rollups
-- are kept by the same triggers, a budget or a rate limit on the team id is reserved against by every
-- call billed to it (the same per-user lock of llmtally_reserve), and API tokens of the team (team keys)
-- bill it. A login id never contains a colon (`github_123`, `password_ada`), so a team id cannot be a login.
--
-- teams names which profiles are teams; team_members who belongs to one. A call through a team key is
-- billed to the team (request_logs.user_profile_id); a key made with end_users may name the person
-- or system behind the call in OpenAI's `user` field, stored as end_user.
--
-- Reading: members read their teams' usage (user_profiles counters, usage_daily, usage_monthly) and
-- budgets under row-level security, through their own team_members rows. They do not read the team's calls (request_logs, request_attempts): those hold other members' prompts.

create table public.teams (
    team_id    text primary key references public.user_profiles (user_id) on delete cascade
               constraint teams_team_id_check check (team_id ~ '^team:[a-z0-9][a-z0-9_.-]{0,62}$'),
    name       text not null default '',
    created_at timestamptz not null default now() constraint teams_created_at_finite check (isfinite(created_at))
);
comment on table public.teams is 'Teams: user_profiles rows billed for the calls of team keys (team:SLUG).';

create table public.team_members (
    team_id  text not null references public.teams (team_id) on delete cascade,
    user_id  text not null references public.user_profiles (user_id) on delete cascade
             constraint team_members_not_a_team check (user_id !~ '^team:'),
    added_at timestamptz not null default now() constraint team_members_added_at_finite check (isfinite(added_at)),
    primary key (team_id, user_id)
);
create index team_members_user_idx on public.team_members (user_id);
comment on table public.team_members is 'Who belongs to which team: members read the team''s usage and budgets.';

alter table public.api_tokens add column end_users boolean not null default false;
comment on column public.api_tokens.end_users is
    'The gateway stores the request''s `user` field as the call''s end user (for team keys); otherwise it is ignored.';

-- A member's teams are the team_members rows they may read (their own, by the policy below), so the
-- policies of the team's tables need no function a client could call (an array of them, built once per
-- statement: an InitPlan). One permissive policy per table
-- and role: the users' own-rows policies are replaced by own-or-team ones.
alter table public.teams enable row level security;
alter table public.team_members enable row level security;
create policy team_members_read_own on public.team_members
    for select to authenticated using (user_id = ((select auth.jwt()) ->> 'sub'));
create policy teams_read_member on public.teams
    for select to authenticated
    using (team_id = any (array(select m.team_id from public.team_members m
                          where m.user_id = ((select auth.jwt()) ->> 'sub'))));

drop policy user_profiles_read_own on public.user_profiles;
create policy user_profiles_read_own_or_team on public.user_profiles
    for select to authenticated
    using (user_id = ((select auth.jwt()) ->> 'sub')
           or user_id = any (array(select m.team_id from public.team_members m
                             where m.user_id = ((select auth.jwt()) ->> 'sub'))));
drop policy usage_daily_read_own on public.usage_daily;
create policy usage_daily_read_own_or_team on public.usage_daily
    for select to authenticated
    using (user_id = ((select auth.jwt()) ->> 'sub')
           or user_id = any (array(select m.team_id from public.team_members m
                             where m.user_id = ((select auth.jwt()) ->> 'sub'))));
drop policy usage_monthly_read_own on public.usage_monthly;
create policy usage_monthly_read_own_or_team on public.usage_monthly
    for select to authenticated
    using (user_id = ((select auth.jwt()) ->> 'sub')
           or user_id = any (array(select m.team_id from public.team_members m
                             where m.user_id = ((select auth.jwt()) ->> 'sub'))));
drop policy budgets_read_own on public.budgets;
create policy budgets_read_own_or_team on public.budgets
    for select to authenticated
    using (user_profile_id is null or user_profile_id = ((select auth.jwt()) ->> 'sub')
           or user_profile_id = any (array(select m.team_id from public.team_members m
                                     where m.user_id = ((select auth.jwt()) ->> 'sub'))));

revoke all on table public.teams, public.team_members from public, anon, authenticated;
grant select on table public.teams, public.team_members to authenticated;
grant select, insert, update, delete on table public.teams, public.team_members to service_role;

-- The audit log of 0017 names a team and a membership too.
create or replace function public.llmtally_audit_change() returns trigger
    language plpgsql
    set search_path = ''
as $$
declare
    before_row jsonb := case when tg_op = 'INSERT' then null else pg_catalog.to_jsonb(old) - 'token_hash' end;
    after_row  jsonb := case when tg_op = 'DELETE' then null else pg_catalog.to_jsonb(new) - 'token_hash' end;
    row_now    jsonb := coalesce(after_row, before_row);
    subject    text;
begin
    subject := case tg_table_name
        when 'budgets' then coalesce(row_now ->> 'user_profile_id', 'default') || ' ' || (row_now ->> 'period')
        when 'rate_limits' then coalesce(row_now ->> 'user_profile_id', 'default')
        when 'model_prices' then row_now ->> 'model'
        when 'api_tokens' then (row_now ->> 'prefix') || '… of ' || (row_now ->> 'user_id')
        when 'teams' then row_now ->> 'team_id'
        when 'team_members' then (row_now ->> 'user_id') || ' in ' || (row_now ->> 'team_id')
        else row_now ->> 'user_id'
    end;
    insert into public.audit_log (actor, action, object, subject, before, after)
    values (public.llmtally_actor(), pg_catalog.lower(tg_op), tg_table_name, coalesce(subject, ''), before_row,
            after_row);
    return null;
end;
$$;

create trigger teams_audit after insert or update or delete on public.teams
    for each row execute function public.llmtally_audit_change();
create trigger team_members_audit after insert or delete on public.team_members
    for each row execute function public.llmtally_audit_change();

drop trigger api_tokens_audit_update on public.api_tokens;
create trigger api_tokens_audit_update after update on public.api_tokens
    for each row
    when (old.revoked_at is distinct from new.revoked_at or old.expires_at is distinct from new.expires_at
          or old.name is distinct from new.name or old.user_id is distinct from new.user_id
          or old.models is distinct from new.models or old.end_users is distinct from new.end_users)
    execute function public.llmtally_audit_change();
