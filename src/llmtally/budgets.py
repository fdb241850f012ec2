"""Budgets and rate limits: reserve a call's worst case before it runs, settle it with its ledger row.

Administration (the CLI uses these): :func:`set_budget`, :func:`delete_budget`, :func:`list_budgets`,
:func:`set_rate_limit`, :func:`get_rate_limit`, :func:`budget_status`.

At call time: :func:`estimate` the worst case (prompt tokens by LiteLLM's tokenizer + ``max_tokens``,
at the model's price), :func:`reserve` it in PostgreSQL (``llmtally_reserve``: exact under any
concurrency), make the call; the ledger's row of the call's billed outcome (a success or a
cancellation) settles the reservation in the same transaction, and :func:`settle_failed` drops it
when the call failed for good. :class:`llmtally.Budgets` (``llmtally.budgeted_calls``) does all of
this around ``litellm.acompletion``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.request
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from llmtally import metrics
from llmtally.db.database import Database
from llmtally.db.queries import query
from llmtally.errors import BudgetExceeded, RateLimited, UnknownUser, UserInputError
from llmtally.integrations.litellm.models import count_tokens, max_output_tokens, split_provider
from llmtally.integrations.litellm.prices import litellm_price

log = logging.getLogger("llmtally.budgets")

PERIODS = ("daily", "weekly", "monthly", "lifetime")
DEFAULT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))


# -- records -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    id: int
    user_profile_id: str | None  # None: the default for every user
    period: str
    limit_usd: Decimal | None
    limit_tokens: int | None
    hard: bool
    thresholds: list[Decimal]
    timezone: str
    updated_at: dt.datetime


@dataclass(frozen=True)
class BudgetStatus:
    """One budget in force for a user now: its period, what was spent and what is reserved."""

    budget_id: int
    owner: str | None
    period: str
    limit_usd: Decimal | None
    limit_tokens: int | None
    hard: bool
    timezone: str
    period_start: dt.datetime | None  # None for lifetime
    period_end: dt.datetime | None
    spent_usd: Decimal
    spent_tokens: int
    reserved_usd: Decimal
    reserved_tokens: int

    @property
    def resets_at(self) -> dt.datetime | None:
        return None if self.period == "lifetime" else self.period_end

    @property
    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        return max(self.limit_usd - self.spent_usd - self.reserved_usd, Decimal(0))

    @property
    def remaining_tokens(self) -> int | None:
        if self.limit_tokens is None:
            return None
        return max(self.limit_tokens - self.spent_tokens - self.reserved_tokens, 0)


@dataclass(frozen=True)
class RateLimit:
    user_profile_id: str | None
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True)
class Alert:
    id: int
    user_id: str
    budget_id: int
    period: str
    period_start: dt.datetime | None  # None for lifetime
    threshold: Decimal
    limit_usd: Decimal | None
    limit_tokens: int | None
    spent_usd: Decimal
    spent_tokens: int
    hard: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class Estimate:
    """The worst case of one call: what is reserved."""

    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int  # max_tokens, or the model's maximum output
    usd: Decimal | None  # None: no price known (a custom price in model_prices still applies in SQL)
    send_max_tokens: int | None  # max_tokens to pass to the call so the estimate is a bound


# -- validation ----------------------------------------------------------------------------------
def parse_period(value: str) -> str:
    period = value.strip().lower()
    if period not in PERIODS:
        raise UserInputError(f"period must be one of {', '.join(PERIODS)} (got {value!r})")
    return period


def parse_usd(value: str | float | Decimal | None, name: str = "--usd") -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise UserInputError(f"{name} must be a number of USD (got {value!r})") from None
    if not amount.is_finite() or amount < 0:
        raise UserInputError(f"{name} must be zero or more (got {value!r})")
    return amount


def parse_count(value: str | int | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise UserInputError(f"{name} must be a whole number (got {value!r})") from None
    if number < 0:
        raise UserInputError(f"{name} must be zero or more (got {value!r})")
    return number


def parse_thresholds(value: str | Sequence[float | Decimal | str] | None) -> list[Decimal]:
    if value is None:
        return list(DEFAULT_THRESHOLDS)
    parts = [p for p in value.split(",") if p.strip()] if isinstance(value, str) else list(value)
    out = []
    for part in parts:
        text = str(part).strip()
        try:
            number = Decimal(text[:-1]) / 100 if text.endswith("%") else Decimal(text)
        except InvalidOperation:
            raise UserInputError(f"thresholds must be fractions like 0.5,0.8,1 or 50%,80% (got {text!r})") from None
        if not number.is_finite() or number <= 0:
            raise UserInputError(f"each threshold must be above 0 (got {text!r})")
        out.append(number)
    if len(out) > 20:
        raise UserInputError("at most 20 thresholds")
    return sorted(set(out))


def check_timezone(value: str) -> str:
    name = value.strip()
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UserInputError(f"unknown timezone {value!r} (use an IANA name such as Europe/Paris or UTC)") from None
    return name


def check_user(db: Database, user_id: str | None) -> None:
    """Raise UnknownUser unless user_id (None: the default) has a profile."""
    if user_id is not None and db.fetch_one(query("profile_exists"), (user_id,)) is None:
        raise UnknownUser(user_id)


# -- administration ------------------------------------------------------------------------------
def set_budget(
    db: Database,
    user_id: str | None,
    period: str,
    *,
    limit_usd: Decimal | None = None,
    limit_tokens: int | None = None,
    hard: bool = True,
    thresholds: Sequence[Decimal] | None = None,
    timezone: str = "UTC",
) -> Budget:
    """Create or replace the budget of ``user_id`` (None: the default) for ``period``."""
    period = parse_period(period)
    limit_usd = parse_usd(limit_usd)
    limit_tokens = parse_count(limit_tokens, "--tokens")
    if limit_usd is None and limit_tokens is None:
        raise UserInputError("give a USD limit, a token limit, or both")
    timezone = check_timezone(timezone)
    levels = parse_thresholds(list(thresholds) if thresholds is not None else None)
    check_user(db, user_id)
    row = db.fetch_all_in_transaction(
        query("set_budget"),
        {
            "user": user_id,
            "period": period,
            "usd": limit_usd,
            "tokens": limit_tokens,
            "hard": hard,
            "thresholds": levels,
            "tz": timezone,
        },
    )
    return Budget(**row[0])


def delete_budget(db: Database, user_id: str | None, period: str) -> bool:
    period = parse_period(period)
    return db.execute(query("delete_budget"), (user_id, period)) > 0


def list_budgets(db: Database, user_id: str | None = None) -> list[Budget]:
    """Every budget, or those of one user (with the defaults that apply to them)."""
    rows = db.fetch_all(query("list_budgets"), {"user": user_id})
    return [Budget(**r) for r in rows]


def budget_status(db: Database, user_id: str, at: dt.datetime | None = None) -> list[BudgetStatus]:
    """The budgets in force for ``user_id`` at ``at`` (now), with spent and reserved amounts."""
    rows = db.fetch_all(query("budget_status"), (user_id, at))
    return [BudgetStatus(**r) for r in rows]


def budgets_in_force(db: Database, user_id: str, *, as_user: bool) -> list[dict[str, Any]]:
    """The user's budgets in force with what remains (``user_budget_status``), read as the user
    (row-level security: the chat's panel and /usage) or as the server (the admin's page of a user)."""
    if as_user:
        return db.fetch_all_as_user(user_id, query("budgets_in_force"), {"user": user_id})
    return db.fetch_all(query("budgets_in_force"), {"user": user_id})


def set_rate_limit(db: Database, user_id: str | None, *, rpm: int | None, tpm: int | None) -> RateLimit:
    """Set requests and tokens per minute for ``user_id`` (None: the default). None means no limit."""
    rpm = parse_count(rpm, "--rpm")
    tpm = parse_count(tpm, "--tpm")
    check_user(db, user_id)
    db.execute(query("set_rate_limit"), (user_id, rpm, tpm))
    return RateLimit(user_id, rpm, tpm)


def get_rate_limit(db: Database, user_id: str | None) -> RateLimit | None:
    """The limits in force for ``user_id`` (their own row, else the default), or None."""
    row = db.fetch_one(query("rate_limit_in_force"), {"user": user_id})
    return None if row is None else RateLimit(**row)


def list_rate_limits(db: Database) -> list[RateLimit]:
    """Every rate limit: the default (user None) first."""
    return [RateLimit(**row) for row in db.fetch_all(query("list_rate_limits"))]


def delete_rate_limit(db: Database, user_id: str | None) -> bool:
    return db.execute(query("delete_rate_limit"), (user_id,)) > 0


def alerts(db: Database, user_id: str | None = None) -> list[Alert]:
    rows = db.fetch_all(query("list_alerts"), {"user": user_id})
    return [Alert(**r) for r in rows]


def deliver_alerts(db: Database, hook: Callable[[Alert], None]) -> int:
    """Hand each alert not yet notified to ``hook`` once (across processes), then mark it notified.

    A hook that raises leaves its alert for the next delivery.
    """
    delivered = 0
    with db.transaction() as conn:
        cur = conn.execute(query("alerts_to_deliver"))
        names = [c.name for c in cur.description or []]
        for values in cur.fetchall():
            alert = Alert(**dict(zip(names, values, strict=True)))
            try:
                hook(alert)
            except Exception:
                log.exception("budget alert hook failed for alert %s", alert.id)
                continue
            conn.execute(query("mark_alert_notified"), (alert.id,))
            delivered += 1
    return delivered


def webhook(url: str, timeout: float = 10.0) -> Callable[[Alert], None]:
    """A hook that POSTs each alert as JSON to ``url``."""

    def post(alert: Alert) -> None:
        body = json.dumps(asdict(alert), default=str).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()

    return post


# -- estimating and reserving ---------------------------------------------------------------------
def estimate(
    model: str, messages: Any, max_tokens: int | None, *, default_max_tokens: int = 4096, outputs: int = 1
) -> Estimate:
    """The worst case of a call: prompt tokens (LiteLLM's tokenizer) + its output limit, at map prices.

    The output limit is ``max_tokens``, else the model's maximum output from LiteLLM's map, else
    ``default_max_tokens`` (then sent as ``max_tokens`` so the estimate stays a bound); times ``outputs``,
    the completions the call makes (a text completion of several prompts, ``n`` choices each).
    """
    bare, provider = split_provider(model)
    prompt = count_tokens(model, messages=messages) if messages else 0
    send = None
    if max_tokens is not None:
        if max_tokens < 0:
            raise UserInputError(f"max_tokens must be zero or more (got {max_tokens})")
        completion = int(max_tokens)
    else:
        known = max_output_tokens(model, bare, f"{provider}/{bare}")
        completion = known or default_max_tokens
        send = None if known else default_max_tokens
    completion *= max(1, outputs)
    price = litellm_price(bare, provider)
    usd = None if price is None else prompt * price[0] + completion * price[1]
    return Estimate(bare, provider, prompt, completion, usd, send)


def estimate_params(est: Estimate) -> dict[str, Any]:
    """The estimate as the reservation's query parameters (``reserve``, ``admit_keyed_call``)."""
    return {
        "model": est.model,
        "provider": est.provider,
        "prompt_tokens": est.prompt_tokens,
        "completion_tokens": est.completion_tokens,
        "usd": est.usd,
    }


def reserve(
    db: Database,
    user_id: str,
    call_id: str,
    est: Estimate,
    *,
    ttl_s: int = 600,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """Reserve ``est`` for ``user_id``; raise :class:`BudgetExceeded` or :class:`RateLimited` if it does not fit."""
    if not user_id:
        raise UserInputError("user_id must not be empty")
    row = db.fetch_all_autocommit(
        query("reserve"),
        {"user_id": user_id, "call_id": call_id, **estimate_params(est), "ttl_s": ttl_s, "at": at},
    )[0]
    refused = refusal(row, est)
    if refused is not None:
        raise refused
    return row


def refusal(decision: dict[str, Any], est: Estimate) -> BudgetExceeded | RateLimited | None:
    """What a refused reservation raises (counted in the metrics), from ``public.llmtally_reserve``'s
    decision; None when it was allowed."""
    if decision["allowed"]:
        return None
    if decision["reason"] in ("rpm", "tpm"):
        metrics.RATE_LIMIT_REFUSALS.inc()
        retry = decision["retry_after_seconds"]
        return RateLimited(
            retry_after=None if retry is None else float(retry),
            kind=decision["reason"],
            limit=int(decision["limit_amount"]),
        )
    metrics.BUDGET_REFUSALS.inc()
    unit = decision["budget_unit"]
    limit, spent, reserved, requested = (
        _shown(decision[k], unit) for k in ("limit_amount", "spent", "reserved", "requested")
    )
    return BudgetExceeded(
        limit=limit,
        spent=spent,
        reserved=reserved,
        requested=requested,
        resets_at=None if decision["period"] == "lifetime" else decision["resets_at"],
        period=decision["period"],
        unit=unit,
        unpriced_model=est.model if decision["reason"] == "unpriced" else None,
    )


def _shown(value: Any, unit: str) -> Any:
    if value is None:
        return None
    return int(value) if unit == "tokens" else Decimal(value).normalize()


def release(db: Database, call_id: str) -> bool:
    """Drop the reservation of a call that never reached the provider (and its rate-limit entry)."""
    row = db.fetch_one(query("release_reservation"), (call_id,))
    return bool(row and row["released"])


def settle_failed(db: Database, call_id: str) -> bool:
    """Drop the reservation of a call that failed for good; it still counts against rate limits.

    A failed attempt does not settle a reservation: a retry or a fallback of the same call may
    still be billed, and the reservation holds its headroom until then.
    """
    row = db.fetch_one(query("settle_failed_reservation"), (call_id,))
    return bool(row and row["settled"])
