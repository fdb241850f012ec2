"""Every error llmtally raises.

    LlmtallyError
    ├── ConfigurationError          bad setting (e.g. a malformed DATABASE_URL)
    ├── MissingExtra                an optional part is used without its extra installed
    ├── DatabaseError               the database could not do what was asked
    │   ├── DatabaseUnreachable     nothing answers at that address
    │   ├── DatabaseAuthFailed      wrong user or password
    │   ├── InsufficientPrivilege   the role may not do this
    │   ├── SchemaNotReady          migrations missing or behind
    │   └── DataRefused             the data itself was refused (SQLSTATE classes 22, 23, 54)
    ├── UnknownUser                 no such user_profiles row
    ├── UserInputError              a bad argument (month, limit, model, ...)
    ├── BudgetExceeded              a hard budget has no room for the call
    ├── RateLimited                 a per-user rate limit has no room for the call now
    └── SpoolFull                   the local spool reached its size limit

Each message is one line a person can act on; ``str(err)`` is what the CLI prints.
"""

from __future__ import annotations


class LlmtallyError(Exception):
    """Base class of every error llmtally raises on purpose."""


class ConfigurationError(LlmtallyError):
    """A setting is missing or malformed."""


class MissingExtra(LlmtallyError):
    """A feature needs packages of an extra (``pip install 'llmtally[app]'``) that are not installed."""

    def __init__(self, feature: str, extra: str, missing: list[str]) -> None:
        super().__init__(f"{feature} needs the {extra} extra: pip install 'llmtally[{extra}]'")
        self.feature, self.extra, self.missing = feature, extra, missing


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


class DataRefused(DatabaseError):
    """The database refused the data itself: a value out of range, a violated check, a row too big.

    SQLSTATE classes 22 (data exception), 23 (integrity violation) and 54 (program limit exceeded),
    or a value the driver could not send. Retrying the same data fails the same way, so the writer
    isolates the event instead of retrying it. ``sqlstate`` is the server's code, or None when the
    driver refused the value before sending it.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


# The SQLSTATE classes of DataRefused.
DATA_REFUSED_CLASSES = ("22", "23", "54")


class UnknownUser(LlmtallyError):
    """No profile exists for this user id."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"unknown user: {user_id!r} (list users with `llmtally users`)")
        self.user_id = user_id


class UserInputError(LlmtallyError):
    """An argument given by the user is invalid."""


# -- budgets and rate limits -------------------------------------------------------------------
def _amount(value: object, unit: str) -> str:
    return f"${value}" if unit == "usd" else f"{value} {unit}"


class BudgetExceeded(LlmtallyError):
    """A hard budget has no room for the call's worst case (or the model has no price)."""

    def __init__(
        self,
        *,
        limit: object,
        spent: object,
        reserved: object,
        resets_at: object,
        period: str = "",
        unit: str = "usd",
        requested: object = None,
        unpriced_model: str | None = None,
    ) -> None:
        self.limit, self.spent, self.reserved, self.resets_at = limit, spent, reserved, resets_at
        self.period, self.unit, self.requested, self.unpriced_model = period, unit, requested, unpriced_model
        resets = "never (lifetime budget)" if period == "lifetime" or resets_at is None else f"at {resets_at}"
        if unpriced_model is not None:
            message = (
                f"no price is known for {unpriced_model} and a hard {period} USD budget applies: set one with"
                f" `llmtally prices set {unpriced_model} --input ... --output ...`"
            )
        else:
            message = (
                f"{period} budget exceeded: spent {_amount(spent, unit)} + reserved {_amount(reserved, unit)}"
                f" + this call {_amount(requested, unit)} > limit {_amount(limit, unit)}; resets {resets}"
            )
        super().__init__(message)


class RateLimited(LlmtallyError):
    """A per-user rate limit (requests or tokens per minute) has no room for the call now."""

    def __init__(self, *, retry_after: float | None, kind: str = "rpm", limit: object = None) -> None:
        self.retry_after, self.kind, self.limit = retry_after, kind, limit
        what = "requests per minute" if kind == "rpm" else "tokens per minute"
        if retry_after is None:
            message = f"rate limited: this call alone exceeds the limit of {limit} {what}"
        else:
            message = f"rate limited: limit of {limit} {what} reached; retry in {retry_after:.1f} s"
        super().__init__(message)


class SpoolFull(LlmtallyError):
    """The local spool reached LLMTALLY_SPOOL_MAX_BYTES: new usage events are refused until it drains."""
