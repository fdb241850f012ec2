"""Catalog lints after Supabase's database linter: a query listing offenders, a known-bad probe, what it finds.

Each lint must report nothing on the migrated schema and exactly the probe's findings once the probe is created
(in a transaction that is rolled back), so every lint is shown able to fail.
"""

from __future__ import annotations

AUTH_CALL = r"auth\.(jwt|uid|role|email)\(\)"
LINTS: dict[str, tuple[str, str, list[str]]] = {
    "rls_disabled_in_public": (
        (
            "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('r', 'p')"
            " and not relrowsecurity"
        ),
        "create table public.lint_probe (id int)",
        ["lint_probe"],
    ),
    "view_without_security_invoker": (
        (
            "select relname from pg_class where relnamespace = 'public'::regnamespace and relkind in ('v', 'm')"
            " and not exists (select from unnest(reloptions) o where o ~* '^security_invoker=(true|on|yes|1)$')"
        ),
        "create view public.lint_probe as select 1 as one",
        ["lint_probe"],
    ),
    "function_search_path_mutable": (
        (
            "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
            " where n.nspname in ('public', 'auth') and pg_get_userbyid(p.proowner) = current_user"
            " and not exists (select from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid"
            "                 and d.deptype = 'e')"
            " and not coalesce(p.proconfig, '{}') && array['search_path=\"\"']"  # Supabase's linter wants exactly ''
        ),
        "create function public.lint_probe() returns int language sql as 'select 1'",
        ["lint_probe()"],
    ),
    "auth_call_not_wrapped_in_select": (
        (
            "select tablename || '.' || policyname from pg_policies, concat(qual, ' ', with_check) q(text)"
            f" where schemaname = 'public' and regexp_count(q.text, '{AUTH_CALL}')"
            f"                                > regexp_count(q.text, '\\( SELECT \\(*{AUTH_CALL}')"
        ),
        (
            "create policy lint_probe on public.model_prices for select to authenticated"
            " using (model = (select auth.jwt() ->> 'sub') or model = auth.jwt() ->> 'sub')"
        ),
        ["model_prices.lint_probe"],
    ),
    "multiple_permissive_policies": (
        (
            "select c.relname || ' ' || r.rolname || ' ' || p.polcmd::text from pg_policy p"
            " join pg_class c on c.oid = p.polrelid join pg_roles r on p.polroles @> array[r.oid]"
            " where c.relnamespace = 'public'::regnamespace and p.polpermissive"
            " group by c.relname, r.rolname, p.polcmd having count(*) > 1"
        ),
        "create policy lint_probe on public.user_profiles for select to authenticated using (user_id = 'x')",
        ["user_profiles authenticated r"],
    ),
    "policy_always_true": (
        (
            "select tablename || '.' || policyname from pg_policies where schemaname = 'public'"
            " and (qual = 'true' or with_check = 'true') and roles && array['anon', 'authenticated', 'public']::name[]"
        ),
        "create policy lint_probe on public.model_prices for select using (true)",
        ["model_prices.lint_probe"],
    ),
    "function_in_public_executable_by_clients": (
        (
            "select p.oid::regprocedure::text from pg_proc p where p.pronamespace = 'public'::regnamespace"
            " and (has_function_privilege('anon', p.oid, 'EXECUTE')"
            "      or has_function_privilege('authenticated', p.oid, 'EXECUTE'))"
            # The two exceptions (docs/security.md), both called by the view user_budget_status, which runs
            # as the user (security_invoker): date arithmetic that reads no table, and a sum that reads
            # as its caller, under row-level security.
            " and p.oid::regprocedure::text not in ('llmtally_period_bounds(text,timestamp with time zone,text)',"
            "   'llmtally_spent(text,timestamp with time zone,timestamp with time zone)')"
        ),
        "create function public.lint_probe() returns int language sql set search_path = '' as 'select 1'",
        ["lint_probe()"],
    ),
    "security_definer_function_executable_by_clients": (
        (
            "select p.oid::regprocedure::text from pg_proc p where p.pronamespace = 'public'::regnamespace"
            " and p.prosecdef and (has_function_privilege('anon', p.oid, 'EXECUTE')"
            "                      or has_function_privilege('authenticated', p.oid, 'EXECUTE'))"
        ),
        (
            "create function public.lint_probe() returns int language sql security definer set search_path = ''"
            " as 'select 1'"
        ),
        ["lint_probe()"],
    ),
    "client_write_privilege": (
        (
            "select c.relname || ': ' || r.name || ' ' || p.priv"
            "  from pg_class c, (values ('anon'), ('authenticated')) r(name),"
            "       (values ('INSERT'), ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER'),"
            "               ('USAGE'), ('SELECT')) p(priv)"
            " where c.relnamespace = 'public'::regnamespace and case"
            "   when c.relkind = 'S' then p.priv in ('USAGE', 'SELECT', 'UPDATE')"
            "                             and has_sequence_privilege(r.name, c.oid, p.priv)"
            "   when c.relkind not in ('r', 'p', 'v', 'm', 'f') or p.priv in ('USAGE', 'SELECT') then false"
            "   when p.priv in ('INSERT', 'UPDATE', 'REFERENCES') then has_any_column_privilege(r.name, c.oid, p.priv)"
            "   else has_table_privilege(r.name, c.oid, p.priv) end"
        ),
        (
            "create table public.lint_probe (id int generated always as identity, note text);"
            # Supabase's default privileges grant everything on a new table: take them back first
            " revoke all on public.lint_probe, public.lint_probe_id_seq from anon, authenticated;"
            " grant update (note) on public.lint_probe to authenticated;"
            " grant usage on sequence public.lint_probe_id_seq to anon"
        ),
        ["lint_probe: authenticated UPDATE", "lint_probe_id_seq: anon USAGE"],
    ),
    "policy_column_without_index": (
        (
            "select pol.polname || ': ' || d.refobjid::regclass || '.' || a.attname"
            "  from pg_policy pol"
            "  join pg_depend d on d.classid = 'pg_policy'::regclass and d.objid = pol.oid"
            "                  and d.refclassid = 'pg_class'::regclass and d.refobjsubid > 0"
            "  join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid"
            "  join pg_class c on c.oid = pol.polrelid"
            " where c.relnamespace = 'public'::regnamespace"
            "   and not exists (select from pg_index i where i.indrelid = d.refobjid and i.indkey[0] = a.attnum"
            "                   and i.indpred is null and i.indisvalid)"
        ),
        "create policy lint_probe on public.model_prices for select to authenticated using (updated_at > now())",
        ["lint_probe: model_prices.updated_at"],
    ),
}
