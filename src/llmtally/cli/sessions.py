"""users revoke-sessions: end a user's chat logins at once (and, if asked, their API tokens)."""

from __future__ import annotations

import click

from llmtally.cli.app import State, console, pass_state
from llmtally.cli.privacy import users
from llmtally.web_sessions import revoke_user_sessions, revoke_user_tokens


@users.command("revoke-sessions")
@click.argument("user_id")
@click.option("--tokens", "with_tokens", is_flag=True, help="Also revoke the user's API tokens.")
@pass_state
def revoke_sessions(state: State, user_id: str, with_tokens: bool) -> None:
    """End every chat login of USER_ID at once: pages, API and open chats must log in again.

    A password login's user id is password_NAME. API tokens keep working unless --tokens is given.
    """
    with state.database() as db:
        ended = revoke_user_sessions(db, user_id)
        revoked = revoke_user_tokens(db, user_id) if with_tokens else None
    console.print(f"ended {ended} login session(s) of {user_id}")
    if revoked is None:
        console.print(
            f"API tokens of {user_id} still work: add --tokens, or see `llmtally tokens list --user {user_id}`"
        )
    else:
        console.print(f"revoked {revoked} API token(s) of {user_id}")
