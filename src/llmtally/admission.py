"""A call made with an API token, admitted in one statement: the token checked, its allow-list asked for
the model, and the call's worst case reserved for the token's user (or team).

The gateway checks a key and reserves a call's budget before it asks the upstream, on every call.
Checking the token (:func:`llmtally.api_tokens.token_access`) and then reserving
(:func:`llmtally.budgets.reserve`) takes two statements, each a round trip; :func:`admit_keyed_call` is
one (``admit_keyed_call`` in ``sql/queries/gateway.sql``), run on the event loop, with the same
outcomes: an unknown, revoked or expired token reserves nothing, nor does a model outside the token's
allow-list, and a budget or rate limit refuses the call as :func:`llmtally.budgets.reserve` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmtally.api_tokens import TokenAccess, access_of, looks_like_token, token_hash
from llmtally.budgets import Estimate, estimate_params, refusal
from llmtally.db.queries import query
from llmtally.db.statements import StatementPool


@dataclass(frozen=True)
class Admission:
    """What admitting a keyed call found: the token's grant (None: unknown, revoked or expired) and
    whether the call was reserved (False: the token may not use the model, or is not valid)."""

    access: TokenAccess | None
    reserved: bool


def _admission(rows: list[dict[str, Any]], est: Estimate) -> Admission:
    if not rows:
        return Admission(None, False)
    row = rows[0]
    access = access_of(row)
    if not row["permitted"]:
        return Admission(access, False)
    refused = refusal(row, est)
    if refused is not None:
        raise refused
    return Admission(access, True)


async def admit_keyed_call(
    statements: StatementPool, token: str, model_group: str, call_id: str, est: Estimate, *, ttl_s: int
) -> Admission:
    """Check ``token``, and reserve ``est`` for its owner under ``call_id`` when it may use
    ``model_group``; raises :class:`llmtally.BudgetExceeded` or :class:`llmtally.RateLimited` when
    the reservation does not fit (nothing is reserved then). Runs on the event loop."""
    if not looks_like_token(token):
        return Admission(None, False)
    params = {"token_hash": token_hash(token), "model_group": model_group, "call_id": call_id, "ttl_s": ttl_s}
    rows = await statements.fetch_all(query("admit_keyed_call"), {**params, **estimate_params(est)})
    return _admission(rows, est)
