"""supabase export|link-auth."""

from __future__ import annotations

from pathlib import Path

import click

from llmtally.cli.app import State, cli, console, pass_state
from llmtally.db.supabase import MIGRATIONS_DIR, apply_auth_link, auth_link_sql, export_migrations, linked_profiles
from llmtally.wording import plural


@cli.group()
def supabase() -> None:
    """Supabase projects: migrations for `supabase db push`, and the link to Supabase Auth."""


@supabase.command("export")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--with-auth-link", is_flag=True, help="Also write the SQL that links user_profiles to auth.users (Supabase Auth)."
)
def export(directory: Path, with_auth_link: bool) -> None:
    """Write the migrations to DIRECTORY/supabase/migrations for `supabase db push`.

    The files are the SQL that `llmtally migrate` runs, byte for byte, named
    <timestamp>_llmtally_<version>_<name>.sql. Only migrations not in the folder yet are written,
    with timestamps after its newest file: after an upgrade, run it again to add the new ones.
    DIRECTORY defaults to the current directory (a Supabase project's root).
    """
    result = export_migrations(directory, with_auth_link=with_auth_link)
    for path in result.written:
        console.print(f"wrote {path}")
    if result.differing:
        names = ", ".join(p.name for p in result.differing)
        raise click.ClickException(
            f"left alone {plural(len(result.differing), 'file')} that differ from this llmtally's migrations: {names}"
        )
    if not result.written:
        console.print(f"nothing to write: {directory / MIGRATIONS_DIR} has every llmtally migration")
        return
    console.print("next: `supabase db push` applies them")


@supabase.command("link-auth")
@click.option("--print", "print_only", is_flag=True, help="Print the SQL instead of applying it.")
@pass_state
def link_auth(state: State, print_only: bool) -> None:
    """Link user_profiles to Supabase Auth: a profile for every auth.users row, kept by a trigger.

    Applies the SQL to the database (safe to repeat). For Supabase projects whose users sign in
    with Supabase Auth; plain PostgreSQL has no auth.users.
    """
    if print_only:
        click.echo(auth_link_sql(), nl=False)
        return
    with state.database() as db:
        apply_auth_link(db)
        console.print(
            f"linked user_profiles to auth.users in {db.where}: {plural(linked_profiles(db), 'Supabase user')}"
        )
