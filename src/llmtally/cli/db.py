"""db status|stop: the embedded PostgreSQL server under LLMTALLY_HOME."""

from __future__ import annotations

import click

from llmtally.cli.app import State, cli, console, pass_state
from llmtally.db.embedded import server_state, stop_server


@cli.group()
def db() -> None:
    """The embedded PostgreSQL server (used when no DATABASE_URL is set)."""


@db.command("status")
@pass_state
def status(state: State) -> None:
    """Show whether the embedded server of LLMTALLY_HOME runs, and which processes use it."""
    found = server_state(state.settings.home)
    if not found.initialised:
        console.print(f"no embedded database in {found.pgdata}")
        return
    if not found.running:
        console.print(f"the embedded PostgreSQL in {found.pgdata} is stopped")
    else:
        users = ", ".join(map(str, found.users)) or "none"
        console.print(f"the embedded PostgreSQL in {found.pgdata} runs (pid {found.postmaster_pid}); used by: {users}")
        if not found.users:
            console.print(
                "no live process uses it: the next llmtally process stops it when done, or `llmtally db stop`"
            )
    if found.dead_users:
        console.print(f"processes that died while using it: {', '.join(map(str, found.dead_users))}")
    if state.settings.database_url:
        console.print("note: DATABASE_URL (or LLMTALLY_DATABASE_URL) is set, so llmtally does not use this server")


@db.command("stop")
@click.option("--force", is_flag=True, help="Stop it even while live processes use it (they lose their connections).")
@pass_state
def stop(state: State, force: bool) -> None:
    """Stop the embedded server of LLMTALLY_HOME if no live process uses it."""
    found = stop_server(state.settings.home, force=force)
    if not found.running:
        console.print(f"the embedded PostgreSQL in {found.pgdata} is not running")
    else:
        console.print(f"stopped the embedded PostgreSQL in {found.pgdata} (pid {found.postmaster_pid})")
