-- The original design's write path, for comparison: one INSERT per call in its own transaction and a
-- per-row trigger that adds the call to the user's counters. Plus the ceiling: a table with the same
-- columns and no index, constraint or trigger.

create table user_profiles (
    user_id       text primary key,
    email         text,
    full_name     text,
    tokens_used   bigint  not null default 0,
    total_cost    numeric not null default 0,
    request_count bigint  not null default 0,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz
);

create table request_logs (
    id                bigint generated always as identity primary key,
    user_profile_id   text references user_profiles (user_id),
    end_user          text,
    session_id        text,
    litellm_call_id   text not null,
    model             text not null,
    provider          text not null,
    prompt_tokens     integer not null,
    completion_tokens integer not null,
    tokens_used       integer not null,
    total_cost        numeric,
    cost_status       text not null,
    messages          jsonb,
    response          jsonb,
    status            text not null,
    error             text,
    error_type        text,
    latency_ms        integer,
    stream            boolean not null,
    metadata          jsonb not null,
    created_at        timestamptz not null
);
create index request_logs_user_idx on request_logs (user_profile_id);
create index request_logs_created_idx on request_logs (created_at);

create function update_user_usage() returns trigger language plpgsql as $$
begin
    update user_profiles
       set tokens_used   = tokens_used + new.tokens_used,
           total_cost    = total_cost + coalesce(new.total_cost, 0),
           request_count = request_count + 1,
           updated_at    = now()
     where user_id = new.user_profile_id;
    return new;
end
$$;

create trigger request_logs_update_user after insert on request_logs
    for each row execute function update_user_usage();

create table bare_logs (
    user_profile_id   text,
    end_user          text,
    session_id        text,
    litellm_call_id   text,
    model             text,
    provider          text,
    prompt_tokens     integer,
    completion_tokens integer,
    tokens_used       integer,
    total_cost        numeric,
    cost_status       text,
    messages          jsonb,
    response          jsonb,
    status            text,
    error             text,
    error_type        text,
    latency_ms        integer,
    stream            boolean,
    metadata          jsonb,
    created_at        timestamptz
);
