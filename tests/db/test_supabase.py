"""On a database shaped like a fresh Supabase project: the migrations, the Supabase CLI's records, and
the optional link to Supabase Auth (tests/support/supabase_shape.py builds the project).

The isolation suite itself (tests/db/test_security.py) runs on this shape too.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
import pytest

from llmtally import UsageEvent
from llmtally.db import Database
from llmtally.db.migrations import ensure_current, load_migrations, migrate, status
from llmtally.db.supabase import apply_auth_link, export_migrations
from llmtally.errors import DatabaseError
from llmtally.ledger.postgres_sink import write_events
from tests.support.cluster import Cluster
from tests.support.invariants import assert_counters_match_ledger
from tests.support.lints import LINTS
from tests.support.supabase_shape import shape_like_supabase

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

AUTH_FUNCTIONS = "select p.proname, pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner) from pg_proc p" \
    " where p.pronamespace = 'auth'::regnamespace order by 1"  # fmt: skip
SUPABASE_POSTGRES = "llmtally_test_supabase_postgres"  # plays Supabase's `postgres`: no superuser


def assert_lints_clean(db: Database) -> None:
    with db.connection() as conn:
        for lint, (query, _, _) in LINTS.items():
            assert [r[0] for r in conn.execute(query)] == [], lint
        conn.rollback()


def test_migrations_apply_on_a_fresh_supabase_project(empty_supabase_db_url: str) -> None:
    with psycopg.connect(empty_supabase_db_url) as conn:
        supabase_auth = conn.execute(AUTH_FUNCTIONS).fetchall()
    with Database(empty_supabase_db_url) as db:
        assert [m.version for m in migrate(db)] == [m.version for m in load_migrations()]
        ensure_current(db)
        # Supabase's own auth functions and roles are left exactly as they were
        with db.connection() as conn:
            assert conn.execute(AUTH_FUNCTIONS).fetchall() == supabase_auth
        assert {r["proname"]: r["owner"] for r in db.fetch_all(
            "select proname, pg_get_userbyid(proowner) as owner from pg_proc where pronamespace = 'auth'::regnamespace"
        )} == dict.fromkeys(["uid", "role", "email", "jwt"], "supabase_auth_admin")  # fmt: skip
        roles = db.fetch_all(
            "select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles"
            " where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by 1"
        )
        assert [tuple(r.values()) for r in roles] == [
            ("anon", False, False, False),
            ("authenticated", False, False, False),
            ("authenticator", True, False, False),
            ("service_role", False, False, True),
        ]
        # Supabase's default privileges are live: a table created now is the clients' to write...
        db.execute("create table public.after_llmtally (id int)")
        privileges = "select has_table_privilege('anon', %s, 'insert') as anon_insert"
        assert db.fetch_one(privileges, ("public.after_llmtally",)) == {"anon_insert": True}
        # ...while llmtally's revokes hold on what the migrations created
        for relation in ("request_logs", "user_profiles", "usage_daily", "sessions", "model_prices"):
            assert db.fetch_one(privileges, (f"public.{relation}",)) == {"anon_insert": False}, relation
        db.execute("drop table public.after_llmtally")
        assert_lints_clean(db)


@pytest.fixture
def owned_by_supabase_postgres(cluster: Cluster) -> Iterator[str]:
    """A Supabase-shaped database owned by a role like Supabase's ``postgres``: no superuser, but createrole,
    createdb, bypassrls and membership of the API roles. Returns a URL that logs in as that role."""
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(
            f"""do $$ begin
                    create role {SUPABASE_POSTGRES} login nosuperuser createrole createdb bypassrls;
                exception when duplicate_object or unique_violation then null; end $$"""
        )
    name = cluster.create_database()
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(f'alter database "{name}" owner to {SUPABASE_POSTGRES}')
    shape_like_supabase(cluster.url(name), owner=SUPABASE_POSTGRES)
    with psycopg.connect(cluster.url(name), autocommit=True) as conn:
        conn.execute(f"grant anon, authenticated, service_role to {SUPABASE_POSTGRES}")
    info = psycopg.conninfo.conninfo_to_dict(cluster.url(name))
    info.pop("password", None)
    info["user"] = SUPABASE_POSTGRES
    yield psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]
    cluster.drop_database(name)


def test_migrations_apply_as_a_role_that_is_not_a_superuser(owned_by_supabase_postgres: str) -> None:
    """Supabase's `postgres` is no superuser: migrate, write, link Auth and pass the lints as such a role."""
    with Database(owned_by_supabase_postgres) as db:
        assert db.fetch_one("select rolsuper from pg_roles where rolname = current_user") == {"rolsuper": False}
        assert len(migrate(db)) == len(load_migrations())
        events = [UsageEvent(f"call-{i}", "gpt-4o-mini", "success", user_profile_id=f"google_{i % 2}",
                             prompt_tokens=i, completion_tokens=1) for i in range(10)]  # fmt: skip
        assert write_events(db, events) == 10
        apply_auth_link(db)
        assert_counters_match_ledger(db)
        assert_lints_clean(db)  # the function lints now inspect functions this role owns: ours


def test_migrations_pushed_by_the_supabase_cli_count_as_applied(empty_supabase_db_url: str, tmp_path: Path) -> None:
    """`llmtally supabase export` + `supabase db push` (played here: run each file in order and record it in
    supabase_migrations.schema_migrations, as the Supabase CLI does) leave nothing for `llmtally migrate`."""
    exported = export_migrations(tmp_path).written
    with psycopg.connect(empty_supabase_db_url, autocommit=True) as conn:
        conn.execute(
            "create schema supabase_migrations;"
            " create table supabase_migrations.schema_migrations (version text primary key, statements text[],"
            " name text)"
        )
        for path in sorted(exported):
            version, name = path.stem.split("_", 1)
            with conn.transaction():
                conn.execute(path.read_bytes())
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, name, statements) values (%s, %s, %s)",
                    (version, name, [path.read_text()]),
                )
    with Database(empty_supabase_db_url) as db:
        ensure_current(db)
        assert status(db).current
        assert migrate(db) == []
        assert write_events(db, [UsageEvent("pushed-1", "gpt-4o-mini", "success", user_profile_id="google_1")]) == 1
        assert_counters_match_ledger(db)


# ---------------------------------------------------------------------------------------------------------------
# The link to Supabase Auth
# ---------------------------------------------------------------------------------------------------------------
def gotrue(db: Database, sql: str, params: Any = None) -> None:
    """Write auth.users as Supabase's Auth server does: as supabase_auth_admin, no privilege on public."""
    with db.transaction() as conn:
        conn.execute("set local role supabase_auth_admin")
        conn.execute(sql, params)


def sign_up(db: Database, email: str, name: str, provider: str) -> uuid.UUID:
    uid = uuid.uuid4()
    gotrue(
        db,
        "insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, created_at,"
        " last_sign_in_at) values (%s, 'authenticated', 'authenticated', %s, %s, %s, now(), now())",
        (uid, email, json.dumps({"provider": provider}), json.dumps({"full_name": name})),
    )
    return uid


def as_supabase_user(db: Database, uid: uuid.UUID, sql: str) -> list[tuple[Any, ...]]:
    """A request with the claims Supabase Auth puts in a user's JWT, set as PostgREST sets them."""
    claims = {"sub": str(uid), "role": "authenticated", "aud": "authenticated", "aal": "aal1", "is_anonymous": False}
    with db.transaction() as conn:
        conn.execute(
            "select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
            (json.dumps(claims),),
        )
        return conn.execute(sql).fetchall()


def test_auth_link_gives_each_supabase_user_a_profile_only_they_read(supabase_db_url: str) -> None:
    with Database(supabase_db_url) as db:
        early = sign_up(db, "early@example.com", "Early Bird", "github")  # before the link: backfilled
        apply_auth_link(db)
        apply_auth_link(db)  # idempotent
        ada = sign_up(db, "ada@example.com", "Ada Lovelace", "google")
        gotrue(db, "update auth.users set email = 'ada@lovelace.dev' where id = %s", (ada,))
        profiles = db.fetch_all(
            "select user_id, auth_user_id, email, full_name, provider from user_profiles order by 3"
        )
        assert profiles == [
            {"user_id": str(ada), "auth_user_id": ada, "email": "ada@lovelace.dev", "full_name": "Ada Lovelace",
             "provider": "google"},
            {"user_id": str(early), "auth_user_id": early, "email": "early@example.com", "full_name": "Early Bird",
             "provider": "github"},
        ]  # fmt: skip

        events = [UsageEvent(f"{who}-{i}", "gpt-4o-mini", "success", user_profile_id=str(uid), prompt_tokens=i + 1)
                  for who, uid in (("ada", ada), ("early", early)) for i in range(3)]  # fmt: skip
        assert write_events(db, events) == 6
        for uid, who in ((ada, "ada"), (early, "early")):
            assert as_supabase_user(db, uid, "select auth.uid(), count(*) from request_logs group by 1") == [(uid, 3)]
            assert as_supabase_user(db, uid, "select litellm_call_id from request_logs order by 1") == [
                (f"{who}-{i}",) for i in range(3)
            ]
            assert as_supabase_user(db, uid, "select user_id from user_request_analytics") == [(str(uid),)]
        assert_lints_clean(db)

        gotrue(db, "delete from auth.users where id = %s", (early,))
        assert db.fetch_all("select user_id from user_profiles") == [{"user_id": str(ada)}]
        assert db.fetch_one("select count(*) as n from request_logs where user_profile_id is null") == {"n": 3}
        assert_counters_match_ledger(db)


def test_auth_link_on_plain_postgresql_is_refused(db: Database) -> None:
    with pytest.raises(DatabaseError, match=r"auth\.users does not exist") as info:
        apply_auth_link(db)
    assert "\n" not in str(info.value)
    assert db.fetch_one(
        "select count(*) as n from pg_attribute where attrelid = 'public.user_profiles'::regclass"
        " and attname = 'auth_user_id'"
    ) == {"n": 0}
