"""Entry point and shared plumbing of the CLI."""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console

from llmtally.db.database import Database, acting_as
from llmtally.db.migrations import ensure_current, migrate
from llmtally.errors import LlmtallyError
from llmtally.settings import Settings

console = Console()

# The USER argument of `budgets` and `limits` that means "everyone without a row of their own".
DEFAULT_USER = "default"


def cli_actor() -> str:
    """Who the audit log says made a command's changes: ``cli:`` and the operating system's user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (some containers)
        return f"cli:uid {os.getuid()}"


def owner_of(user: str) -> str | None:
    """The user id a budget or limit row belongs to: None for DEFAULT_USER."""
    return None if user == DEFAULT_USER else user


class Group(click.Group):
    """A group whose commands turn llmtally errors into one clean line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LlmtallyError as exc:
            raise click.ClickException(str(exc)) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
            raise click.ClickException(f"invalid setting {where}: {first.get('msg')}") from None


class State:
    """What every command gets: the settings, and a way to open the database."""

    def __init__(self, database_url: str | None) -> None:
        self._database_url = database_url

    @property
    def settings(self) -> Settings:
        settings = Settings()
        if self._database_url:
            settings = settings.model_copy(update={"database_url": self._database_url})
        return settings

    @contextmanager
    def database(self, *, require_schema: bool = True) -> Iterator[Database]:
        """Open the database; an embedded one is migrated, a shared one must already be."""
        db = Database.from_settings(self.settings).open()
        try:
            if require_schema:
                if db.embedded is not None:
                    migrate(db)
                else:
                    ensure_current(db)
            with acting_as(cli_actor()):  # every change a command makes is in the audit log as this
                yield db
        finally:
            db.close()


pass_state = click.make_pass_decorator(State)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    envvar=["LLMTALLY_DATABASE_URL", "DATABASE_URL"],
    show_envvar=True,
    metavar="URL",
    help="PostgreSQL URL. Unset: the embedded server under LLMTALLY_HOME.",
)
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.version_option(package_name="llmtally")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, verbose: int) -> None:
    """llmtally: know who spent what on LLMs."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # this command's COLUMNS, not the one when the console was made (in-process runs)
        console.width = int(columns)
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = State(database_url)


def load_commands() -> click.Group:
    """The CLI with every command registered (importing a command module registers it).

    One module per command, named after it (``tokens`` lives in ``api_tokens``: API tokens, not LLM tokens).
    """
    from llmtally.cli import (  # noqa: F401
        api_tokens,
        audit,
        budgets,
        db,
        demo,
        export,
        gateway,
        limits,
        migrate,
        prices,
        quarantine,
        report,
        retention,
        spool,
        supabase,
        teams,
        up,
        users,
    )

    return cli


def main() -> None:
    load_commands()
    try:
        cli(prog_name="llmtally")
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)
