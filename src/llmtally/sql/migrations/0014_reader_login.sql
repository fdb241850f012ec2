-- llmtally 0014: the login of per-user reads. Database.as_user() used to switch role on the server's
-- own connection, whose login role (an owner, often a superuser) a `reset role` returns to. It now runs
-- on connections that log in as llmtally_authenticator: LOGIN NOINHERIT, member only of anon and
-- authenticated, as PostgREST's authenticator. Outside `set role` it holds no privilege at all, so
-- `reset role` reads nothing, `set role service_role` is refused and so is `copy ... to program`.
--
-- Roles belong to the cluster, not the database: many databases of one cluster may run this at once,
-- so every step tolerates a concurrent twin. The role gets no password here: on the embedded server it
-- logs in over the server's own socket; elsewhere give it one (`alter role llmtally_authenticator
-- password '...'`) and name it in LLMTALLY_READER_DATABASE_URL (docs/security.md).

do $$
declare
    r text;
    tries int;
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'llmtally_authenticator') then
        begin
            create role llmtally_authenticator login noinherit nosuperuser nocreatedb nocreaterole noreplication
                nobypassrls;
        exception
            when duplicate_object or unique_violation then
                null;  -- created concurrently by a migration of another database in this cluster
            when insufficient_privilege then
                raise notice 'llmtally: could not create role llmtally_authenticator (%): per-user reads need'
                             ' LLMTALLY_READER_DATABASE_URL naming a login that is a member of anon and'
                             ' authenticated only', sqlerrm;
                return;
        end;
    end if;
    foreach r in array array['anon', 'authenticated'] loop
        tries := 0;
        while not pg_catalog.pg_has_role('llmtally_authenticator', r, 'MEMBER') loop
            tries := tries + 1;
            begin
                execute format('grant %I to llmtally_authenticator', r);
            exception
                when unique_violation or duplicate_object or object_in_use or internal_error then
                    -- a concurrent twin granted it first ("tuple concurrently updated"): look again
                    if tries >= 5 then
                        raise;
                    end if;
                    perform pg_catalog.pg_sleep(0.05 * tries);
                when insufficient_privilege then
                    raise notice 'llmtally: could not grant % to llmtally_authenticator: %', r, sqlerrm;
                    exit;
            end;
        end loop;
    end loop;
end
$$;
