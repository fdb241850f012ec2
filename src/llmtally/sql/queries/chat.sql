-- Chainlit's data layer on schema chat (llmtally.app.datalayer). A line "-- name --" starts a query.

-- chat_own_thread --
-- The chat's data layer (app/datalayer.py) writes only into threads of the acting user (%(me)s): a new
-- thread is created as theirs. A row when the thread is theirs, none otherwise. (ON CONFLICT sees a
-- thread another transaction has just made, which a plain select in this statement would not.)
insert into chat.threads as t (id, user_id, user_identifier)
values (%(thread_id)s, (select id from chat.users where identifier = %(me)s), %(me)s)
on conflict (id) do update set user_id = coalesce(t.user_id, excluded.user_id)
 where t.user_identifier = excluded.user_identifier
returning true as mine

-- chat_upsert_thread --
-- Create the acting user's thread or update it; another user's thread is left alone (no row).
insert into chat.threads as t (id, name, user_id, user_identifier, tags, metadata)
select %(id)s, %(name)s, u.id, u.identifier, %(tags)s, %(meta)s::jsonb
  from chat.users u
 where u.identifier = %(me)s and (%(user_id)s::uuid is null or u.id = %(user_id)s::uuid)
on conflict (id) do update set
    name = coalesce(excluded.name, t.name),
    user_id = coalesce(t.user_id, excluded.user_id),
    tags = coalesce(excluded.tags, t.tags),
    metadata = t.metadata || excluded.metadata,
    updated_at = now()
 where t.user_identifier = excluded.user_identifier

-- chat_delete_thread --
delete from chat.threads where id = %(id)s and user_identifier = %(me)s

-- chat_upsert_step --
-- A message of the acting user's thread; a step id of another thread is left alone (no row).
insert into chat.steps as s (id, thread_id, parent_id, name, type, input, output, metadata, is_error,
                             show_input, language, generation, tags, start_time, end_time)
select %(id)s, %(thread_id)s, %(parent_id)s, %(name)s, %(type)s, %(input)s, %(output)s,
       %(metadata)s::jsonb, %(is_error)s, %(show_input)s, %(language)s, %(generation)s::jsonb,
       %(tags)s, %(start)s, %(end)s
 where exists (select 1 from chat.threads t where t.id = %(thread_id)s and t.user_identifier = %(me)s)
on conflict (id) do update set
    name = coalesce(excluded.name, s.name),
    input = coalesce(nullif(excluded.input, ''), s.input),
    output = coalesce(nullif(excluded.output, ''), s.output),
    metadata = case when excluded.metadata <> '{}'::jsonb then excluded.metadata else s.metadata end,
    is_error = excluded.is_error or s.is_error,
    generation = coalesce(excluded.generation, s.generation),
    tags = coalesce(excluded.tags, s.tags),
    end_time = coalesce(excluded.end_time, s.end_time)
 where s.thread_id = excluded.thread_id

-- chat_delete_step --
delete from chat.steps s using chat.threads t
 where s.id = %(id)s and t.id = s.thread_id and t.user_identifier = %(me)s

-- chat_upsert_feedback --
-- Feedback on a message of the acting user's thread; another user's feedback id is left alone (no row).
insert into chat.feedbacks as f (id, step_id, thread_id, value, comment)
select %(id)s, s.id, s.thread_id, %(value)s, %(comment)s
  from chat.steps s join chat.threads t on t.id = s.thread_id
 where s.id = %(step)s and t.user_identifier = %(me)s
on conflict (id) do update set value = excluded.value, comment = excluded.comment
 where f.step_id = excluded.step_id

-- chat_delete_feedback --
delete from chat.feedbacks f using chat.threads t
 where f.id = %(id)s and t.id = f.thread_id and t.user_identifier = %(me)s

-- chat_upsert_element --
insert into chat.elements as e (id, thread_id, step_id, type, name, mime, url, chainlit_key, display, size,
                                language, page, props)
select %(id)s, %(thread)s, %(step)s, %(type)s, %(name)s, %(mime)s, %(url)s, %(key)s, %(display)s, %(size)s,
       %(language)s, %(page)s, %(props)s::jsonb
 where exists (select 1 from chat.threads t where t.id = %(thread)s and t.user_identifier = %(me)s)
on conflict (id) do update set props = excluded.props
 where e.thread_id = excluded.thread_id

-- chat_delete_element --
delete from chat.elements e using chat.threads t
 where e.id = %(id)s and (%(t)s::text is null or e.thread_id = %(t)s)
   and t.id = e.thread_id and t.user_identifier = %(me)s

-- chat_user --
select * from chat.users where identifier = %(i)s

-- chat_upsert_user --
insert into chat.users (identifier, metadata) values (%(i)s, %(m)s::jsonb)
on conflict (identifier) do update set metadata = excluded.metadata
returning *

-- chat_thread_author --
select user_identifier from chat.threads where id = %(id)s

-- chat_list_threads --
-- One page of a user's threads, newest first, after the cursor thread; one row more than the page
-- tells whether another page follows.
select t.* from chat.threads t
 where t.user_id = %(user)s::uuid
   and (%(search)s::text is null or t.name ilike '%%' || %(search)s || '%%')
   and (%(cursor)s::text is null
        or t.updated_at < (select updated_at from chat.threads where id = %(cursor)s))
 order by t.updated_at desc
 limit %(limit)s

-- chat_thread --
select * from chat.threads where id = %(id)s

-- chat_thread_steps --
select s.*, f.id as feedback_id, f.value as feedback_value, f.comment as feedback_comment
  from chat.steps s left join chat.feedbacks f on f.step_id = s.id
 where s.thread_id = %(id)s
 order by s.start_time, s.id

-- chat_element --
select * from chat.elements where id = %(id)s and thread_id = %(t)s
