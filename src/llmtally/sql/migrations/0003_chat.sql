-- llmtally: the chat app's threads, in their own schema `chat` (not `public`), under row-level security.
--
-- Chainlit keeps users, threads, steps (messages), elements and feedback through llmtally's data
-- layer. Only the server writes; an `authenticated` user reads only their own threads and what is in
-- them. chat.users.identifier and chat.threads.user_identifier hold llmtally's user id
-- (e.g. google_117195204714065447709), the same id as public.user_profiles.user_id.

create schema if not exists chat;
revoke all on schema chat from public;
grant usage on schema chat to authenticated, service_role;

create table chat.users (
    id         uuid primary key default gen_random_uuid(),
    identifier text not null unique check (identifier <> ''),
    metadata   jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);

create table chat.threads (
    id              text primary key,
    name            text,
    user_id         uuid references chat.users (id) on delete cascade,
    user_identifier text,
    tags            text[],
    metadata        jsonb not null default '{}'::jsonb,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
create index threads_user_identifier_idx on chat.threads (user_identifier, updated_at desc);
create index threads_user_id_idx on chat.threads (user_id);

create table chat.steps (
    id          text primary key,
    thread_id   text not null references chat.threads (id) on delete cascade,
    parent_id   text,
    name        text,
    type        text not null,
    input       text,
    output      text,
    metadata    jsonb not null default '{}'::jsonb,
    is_error    boolean not null default false,
    show_input  text,
    language    text,
    generation  jsonb,
    tags        text[],
    start_time  timestamptz not null default now(),
    end_time    timestamptz
);
create index steps_thread_idx on chat.steps (thread_id, start_time);

create table chat.elements (
    id           text primary key,
    thread_id    text references chat.threads (id) on delete cascade,
    step_id      text,
    type         text,
    name         text,
    mime         text,
    url          text,
    object_key   text,
    chainlit_key text,
    display      text,
    size         text,
    language     text,
    page         integer,
    props        jsonb not null default '{}'::jsonb
);
create index elements_thread_idx on chat.elements (thread_id);

create table chat.feedbacks (
    id        text primary key,
    step_id   text not null references chat.steps (id) on delete cascade,
    thread_id text references chat.threads (id) on delete cascade,
    value     double precision not null,
    comment   text
);
create index feedbacks_step_idx on chat.feedbacks (step_id);
create index feedbacks_thread_idx on chat.feedbacks (thread_id);

alter table chat.users     enable row level security;
alter table chat.threads   enable row level security;
alter table chat.steps     enable row level security;
alter table chat.elements  enable row level security;
alter table chat.feedbacks enable row level security;

create policy users_read_own on chat.users
    for select to authenticated using (identifier = ((select auth.jwt()) ->> 'sub'));
create policy threads_read_own on chat.threads
    for select to authenticated using (user_identifier = ((select auth.jwt()) ->> 'sub'));
create policy steps_read_own on chat.steps
    for select to authenticated using (
        exists (select 1 from chat.threads t
                 where t.id = steps.thread_id and t.user_identifier = ((select auth.jwt()) ->> 'sub')));
create policy elements_read_own on chat.elements
    for select to authenticated using (
        exists (select 1 from chat.threads t
                 where t.id = elements.thread_id and t.user_identifier = ((select auth.jwt()) ->> 'sub')));
create policy feedbacks_read_own on chat.feedbacks
    for select to authenticated using (
        exists (select 1 from chat.threads t
                 where t.id = feedbacks.thread_id and t.user_identifier = ((select auth.jwt()) ->> 'sub')));

revoke all on all tables in schema chat from public, anon, authenticated;
grant select on all tables in schema chat to authenticated;
grant all on all tables in schema chat to service_role;
