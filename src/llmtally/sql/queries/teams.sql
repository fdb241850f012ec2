-- Teams (llmtally.teams, migration 0022). A line "-- name --" starts a query.

-- create_team_profile --
-- A team is billed as a user: its profile first (counters, rollups, budgets key on it).
insert into public.user_profiles (user_id, full_name, provider)
values (%(team_id)s, %(name)s, 'team')
on conflict (user_id) do nothing

-- create_team --
insert into public.teams (team_id, name) values (%(team_id)s, %(name)s)
on conflict (team_id) do nothing
returning team_id

-- team_exists --
select 1 from public.teams where team_id = %(team_id)s

-- add_team_member --
insert into public.team_members (team_id, user_id) values (%(team_id)s, %(user_id)s)
on conflict do nothing
returning user_id

-- remove_team_member --
delete from public.team_members where team_id = %(team_id)s and user_id = %(user_id)s
returning user_id

-- list_teams --
-- Every team with its members and its usage this month (usage_monthly, UTC), largest cost first.
select t.team_id, t.name, t.created_at,
       coalesce((select array_agg(m.user_id order by m.user_id) from public.team_members m
                  where m.team_id = t.team_id), '{}') as members,
       coalesce(u.requests, 0) as requests, coalesce(u.tokens, 0) as tokens, coalesce(u.cost, 0) as cost
  from public.teams t
  left join lateral (
        select sum(um.requests) as requests, sum(um.tokens) as tokens, sum(um.cost) as cost
          from public.usage_monthly um
         where um.user_id = t.team_id
           and um.month = date_trunc('month', now() at time zone 'UTC')::date) u on true
 order by cost desc, t.team_id

-- my_teams_usage --
-- The teams the reader belongs to and their usage this month: read as the user, so row-level security
-- (migration 0022) shows only their teams.
select t.team_id, t.name,
       coalesce(sum(um.requests), 0) as requests, coalesce(sum(um.tokens), 0) as tokens,
       coalesce(sum(um.cost), 0) as cost
  from public.teams t
  left join public.usage_monthly um
    on um.user_id = t.team_id and um.month = date_trunc('month', now() at time zone 'UTC')::date
 group by t.team_id, t.name
 order by t.team_id
