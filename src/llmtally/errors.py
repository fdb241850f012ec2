"""Every error llmtally raises.

    LlmtallyError
    ├── ConfigurationError          bad setting (e.g. a malformed DATABASE_URL)
    ├── DatabaseError               the database could not do what was asked
    │   ├── DatabaseUnreachable     nothing answers at that address
    │   ├── DatabaseAuthFailed      wrong user or password
    │   ├── InsufficientPrivilege   the role may not do this
    │   └── SchemaNotReady          migrations missing or behind
    ├── UnknownUser                 no such user_profiles row
    ├── UserInputError              a bad argument (month, limit, model, ...)
    └── SpoolFull                   the local spool reached its size limit

Each message is one line a person can act on; ``str(err)`` is what the CLI prints.
"""

from __future__ import annotations


class LlmtallyError(Exception):
    """Base class of every error llmtally raises on purpose."""


class ConfigurationError(LlmtallyError):
    """A setting is missing or malformed."""


class DatabaseError(LlmtallyError):
    """The database refused or failed an operation."""


class DatabaseUnreachable(DatabaseError):
    """No PostgreSQL server answered at the configured address."""


class DatabaseAuthFailed(DatabaseError):
    """The server rejected the credentials."""


class InsufficientPrivilege(DatabaseError):
    """The connected role lacks a privilege the operation needs."""


class SchemaNotReady(DatabaseError):
    """The llmtally schema is missing or older than this version of llmtally."""

    def __init__(self, message: str, *, applied: int, expected: int) -> None:
        super().__init__(message)
        self.applied = applied
        self.expected = expected


class UnknownUser(LlmtallyError):
    """No profile exists for this user id."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"unknown user: {user_id!r} (list users with `llmtally users`)")
        self.user_id = user_id


class UserInputError(LlmtallyError):
    """An argument given by the user is invalid."""


class SpoolFull(LlmtallyError):
    """The local spool reached LLMTALLY_SPOOL_MAX_BYTES: new usage events are refused until it drains."""
