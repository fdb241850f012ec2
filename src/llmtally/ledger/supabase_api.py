"""Usage written through Supabase's API (PostgREST), for deployments given only a URL and a server key.

The one module that talks HTTP. Each batch is one call of ``rpc/llmtally_ingest`` (migration 0002),
which runs the same insert as the direct path (``llmtally_insert_events``): idempotent on
``litellm_call_id``, with counters and rollup updated by the same trigger in the same transaction.
Profiles and sessions go through ``rpc/llmtally_upsert_user`` and ``rpc/llmtally_link_session``.

Only ``service_role`` may execute these functions. A public key (the anon JWT or a publishable
``sb_publishable_...`` key, which ships to browsers) is refused here, before any request. The key is
never logged or put in an error message.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from llmtally import extras
from llmtally.domain.events import UsageEvent
from llmtally.errors import (
    DATA_REFUSED_CLASSES,
    ConfigurationError,
    DatabaseAuthFailed,
    DatabaseError,
    DatabaseUnreachable,
    DataRefused,
    InsufficientPrivilege,
    LlmtallyError,
    SchemaNotReady,
)
from llmtally.ledger.rows import EVENT_FIELDS, event_row

if TYPE_CHECKING:
    import httpx
    from supabase import Client

log = logging.getLogger("llmtally.supabase")

PUBLISHABLE_PREFIX = "sb_publishable_"
SECRET_PREFIX = "sb_secret_"
TIMEOUT_S = 30.0
_JSON_FIELDS = frozenset({"messages", "response", "metadata"})
_MISSING_FUNCTION = frozenset({"PGRST202", "42883"})


def key_role(key: str) -> str | None:
    """The database role a Supabase API key acts as, as far as the key itself tells (None: it does not).

    Publishable keys act as ``anon`` and secret keys as ``service_role``; a legacy JWT key names its
    role in the ``role`` claim (read without verifying the signature: this is a safety check on
    our own configuration, not authentication).
    """
    if key.startswith(PUBLISHABLE_PREFIX):
        return "anon"
    if key.startswith(SECRET_PREFIX):
        return "service_role"
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    role = claims.get("role") if isinstance(claims, dict) else None
    return role if isinstance(role, str) else None


def check_server_key(key: str) -> None:
    """Refuse, with one line that names no secret, a key that browsers may hold."""
    role = key_role(key)
    if role == "anon":
        kind = "publishable key" if key.startswith(PUBLISHABLE_PREFIX) else "anon key (its JWT role is anon)"
        raise ConfigurationError(
            f"the Supabase server key is the public {kind}, which browsers hold and which may not write usage:"
            " use the service_role key or a secret key (sb_secret_...), and keep it on the server"
        )
    if role == "authenticated":
        raise ConfigurationError(
            "the Supabase server key is a user's access token (its JWT role is authenticated), which may not write"
            " usage: use the service_role key or a secret key (sb_secret_...)"
        )


def event_payload(event: UsageEvent, *, store_content: bool = True) -> dict[str, Any]:
    """One event as a JSON object for ``llmtally_ingest``: the stage row of the direct path, by field name.

    Costs travel as strings, so they stay exact; JSON columns travel as JSON.
    """
    row = event_row(0, event, store_content=store_content)
    payload: dict[str, Any] = {}
    for name, value in zip(EVENT_FIELDS[1:], row[1:], strict=True):
        if name in _JSON_FIELDS and value is not None:
            value = json.loads(value)
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, dt.datetime):
            value = value.isoformat()
        payload[name] = value
    return payload


def translate(exc: BaseException, where: str) -> LlmtallyError:
    """An HTTP or PostgREST error as an llmtally error with a one-line message."""
    import httpx
    from postgrest.exceptions import APIError

    if isinstance(exc, LlmtallyError):
        return exc
    if isinstance(exc, APIError):
        code = str(exc.code or "")
        message = " ".join(str(exc.message or "no message").split())
        if code == "42501":
            return InsufficientPrivilege(
                f"{where} refused: {message} (writing usage needs the service_role key or a secret key)"
            )
        if code in _MISSING_FUNCTION:
            return SchemaNotReady(
                f"{where} has no llmtally write functions ({message}): apply the migrations with `llmtally migrate`"
                " or `llmtally supabase export` and `supabase db push`",
                applied=0,
                expected=0,
            )
        if len(code) == 5 and code[:2] in DATA_REFUSED_CLASSES:
            return DataRefused(f"{where} refused the data: {message}", sqlstate=code)
        if code.startswith("PGRST3") or code in {"401", "403"} or "api key" in message.lower():
            return DatabaseAuthFailed(f"{where} rejected the key: {message}")
        return DatabaseError(f"{where} answered {code or 'an error'}: {message}")
    if isinstance(exc, httpx.HTTPError):
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return DatabaseUnreachable(f"cannot reach {where}: {detail}")
    if isinstance(exc, ValueError | TypeError | OverflowError | RecursionError):
        return DataRefused(f"{where}: a value could not be sent: {type(exc).__name__}: {exc}")
    return DatabaseError(f"{where}: {type(exc).__name__}: {exc}")


class SupabaseApiSink:
    """Writes batches, profiles and sessions through Supabase's API with a server key."""

    def __init__(self, url: str, key: str, *, store_content: bool = True) -> None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ConfigurationError(f"SUPABASE_URL must be the project's https:// URL (got {url!r})")
        check_server_key(key)
        self.url = url.rstrip("/")
        self.store_content = store_content
        self._key = key
        self._http: httpx.Client | None = None
        self._client: Client | None = None

    @property
    def where(self) -> str:
        return f"the Supabase API at {self.url}"

    def open(self) -> SupabaseApiSink:
        """Create the client and make one empty ingest call, so a wrong URL, key or schema fails now."""
        if self._client is None:
            extras.require("supabase", "writing through Supabase's API")
            import httpx
            from supabase import ClientOptions, create_client

            self._http = httpx.Client(timeout=TIMEOUT_S)
            options = ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=self._http)
            try:
                self._client = create_client(self.url, self._key, options=options)
                self._call("llmtally_ingest", {"events": []})
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self._http = None
        self._client = None

    def write(self, events: Sequence[UsageEvent]) -> int:
        """One ``llmtally_ingest`` call for the batch; how many rows were new (replays count 0)."""
        payload = [event_payload(e, store_content=self.store_content) for e in events]
        return int(self._call("llmtally_ingest", {"events": payload}))

    def write_lines(self, lines: Sequence[bytes]) -> int | None:
        """None: the API takes events, not spool records (the writer decodes them and calls ``write``)."""
        return None

    def quarantine(self, rows: Sequence[tuple[str | None, str, str]]) -> int:
        """Keep events the database refused (``llmtally_quarantine``, migration 0007)."""
        events = [{"litellm_call_id": c, "reason": r, "raw_event": raw} for c, r, raw in rows]
        return int(self._call("llmtally_quarantine", {"events": events}))

    def upsert_user(
        self, user_id: str, *, email: str | None = None, full_name: str | None = None, provider: str | None = None
    ) -> None:
        self._call(
            "llmtally_upsert_user", {"user_id": user_id, "email": email, "full_name": full_name, "provider": provider}
        )

    def link_session(self, session_id: str, user_id: str) -> None:
        self._call("llmtally_link_session", {"session_id": session_id, "user_id": user_id})

    def _call(self, function: str, params: dict[str, Any]) -> Any:
        if self._client is None:
            raise ConfigurationError("the Supabase API sink is not open")
        try:
            return self._client.rpc(function, params).execute().data
        except Exception as exc:
            raise translate(exc, self.where) from exc
