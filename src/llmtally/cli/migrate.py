"""migrate: create or upgrade the schema."""

from __future__ import annotations

import click

from llmtally.cli.app import State, cli, console, pass_state
from llmtally.db.migrations import migrate as run_migrations
from llmtally.db.migrations import status as migration_status
from llmtally.wording import plural


@cli.command()
@click.option("--check", is_flag=True, help="Only report whether migrations are pending (exit 1 if so).")
@pass_state
def migrate(state: State, check: bool) -> None:
    """Create or upgrade the llmtally schema (safe to run concurrently and repeatedly)."""
    with state.database(require_schema=False) as db:
        if check:
            st = migration_status(db)
            if st.pending:
                names = ", ".join(m.filename for m in st.pending)
                raise click.ClickException(f"{plural(len(st.pending), 'migration')} pending in {db.where}: {names}")
            console.print(f"schema is current in {db.where} (migration {st.latest})")
            return
        applied = run_migrations(db)
        if applied:
            for m in applied:
                console.print(f"applied {m.filename}")
        console.print(f"schema is current in {db.where} (migration {migration_status(db).latest})")
