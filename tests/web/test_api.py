"""The JSON API over a real database: authentication, tokens, errors, admin views, isolation."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtally.api_tokens import create_token, list_tokens, revoke_token, token_hash
from llmtally.budgets import estimate, reserve, set_budget, set_rate_limit
from llmtally.errors import BudgetExceeded, RateLimited
from tests.support.web_seed import ADA, BOB, ROOT, Api

TODAY = dt.datetime.now(dt.UTC).date()


def body(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def test_no_credentials_bad_scheme_and_unknown_token_are_401_json(api: Api) -> None:
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer lt_" + "x" * 43}):
        response = api.client.get("/usage/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert set(response.json()) == {"error", "status"} and response.json()["status"] == 401


def test_a_token_reads_its_owners_usage(api: Api) -> None:
    me = body(api.get("/usage/me", ADA))
    assert me["user_id"] == ADA
    assert me["requests"] == {"total": 3, "success": 2, "failure": 1, "cancelled": 0}
    history = body(api.get("/usage/me/history", ADA, limit=2))
    assert [r["litellm_call_id"] for r in history["items"]] == ["ada-3", "ada-2"]
    rest = body(api.get("/usage/me/history", ADA, limit=2, before=history["next_before"]))
    assert [r["litellm_call_id"] for r in rest["items"]] == ["ada-1"] and rest["next_before"] is None
    refused: Any = api.get("/usage/me/history", ADA, before=BOB)  # a cursor the server never gave: not echoed
    assert refused.status_code == 400 and "invalid history cursor" in refused.text and BOB not in refused.text
    [month] = body(api.get("/usage/me/monthly", ADA))
    assert month["requests"] == 3 and set(month["model_breakdown"]) == {"gpt-4o-mini", "acme-internal"}
    recent = body(api.get("/usage/me/recent", ADA))
    assert recent[0]["messages"] == [{"role": "user", "content": "question ada-3"}]


def test_revoked_and_expired_tokens_stop_working(api: Api) -> None:
    token, record = create_token(api.db, BOB, name="short")
    assert api.client.get("/usage/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoke_token(api.db, record.prefix)
    assert api.client.get("/usage/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    expiring, _ = create_token(api.db, BOB, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    api.db.execute("update api_tokens set expires_at = now() - interval '1 second' where expires_at is not null")
    assert api.client.get("/usage/me", headers={"Authorization": f"Bearer {expiring}"}).status_code == 401


def test_tokens_are_stored_hashed_and_used_times_recorded(api: Api) -> None:
    stored = api.db.fetch_all("select token_hash, prefix, last_used_at from api_tokens where user_id = %s", (ADA,))
    token = api.tokens[ADA]
    assert [r["token_hash"] for r in stored] == [token_hash(token)]
    assert token not in json.dumps(stored, default=str) and len(token) >= 40
    body(api.get("/usage/me", ADA))
    [listed] = list_tokens(api.db, ADA)
    assert listed.last_used_at is not None and listed.active and token.startswith(listed.prefix)


def test_admin_endpoints_refuse_non_admins_with_403(api: Api) -> None:
    for path in [
        "/admin/users",
        "/admin/models",
        "/admin/daily",
        f"/admin/users/{ADA}",
        "/admin/export",
        "/admin/tags",
    ]:
        response = api.get(path, ADA)
        assert response.status_code == 403, path  # type: ignore[attr-defined]
        assert response.json()["error"].startswith("administrators only")  # type: ignore[attr-defined]


def test_admin_endpoints_answer_an_admin_by_email(api: Api) -> None:
    users = {u["user_id"]: u for u in body(api.get("/admin/users", ROOT))}
    assert users[BOB]["request_count"] == 2 and users[ADA]["request_count"] == 3
    models = {(m["model"], m["provider"]): m["requests"] for m in body(api.get("/admin/models", ROOT))}
    assert models == {("gpt-4o-mini", "openai"): 4, ("acme-internal", "acme"): 1}
    summary = body(api.get("/admin/summary", ROOT))
    current = summary["current"]
    # active users: Ada and Bob; the anonymous call counts as a request but is nobody
    assert (current["requests"], current["failures"], current["active_users"]) == (5, 1, 2)
    assert Decimal(current["error_rate"]) == Decimal("0.2") and current["unpriced_requests"] == 1
    detail = body(api.get(f"/admin/users/{BOB}", ROOT))
    assert detail["analytics"]["user_id"] == BOB and len(detail["monthly"]) == 2 and len(detail["recent"]) == 2
    failures = body(api.get("/admin/failures", ROOT))
    assert [(f["user_id"], f["error"]) for f in failures] == [(ADA, "RateLimitError: slow down")]
    assert [m["model"] for m in body(api.get("/admin/unpriced", ROOT))] == ["acme-internal"]
    assert body(api.get("/admin/tags", ROOT)) == []  # the seed tags nothing (tests/db/test_tag_usage.py does)
    latency = body(api.get("/admin/latency", ROOT))
    counts = {b["upper_ms"]: b["requests"] for b in latency["buckets"]}
    assert latency["sampled"] == 5 and counts[250] == 3 and counts[1000] == 1 and counts[5000] == 1
    series = body(api.get("/admin/timeseries", ROOT))
    assert sum(r["requests"] for r in series) == 5
    top = body(api.get("/admin/top-users", ROOT, limit=1))
    assert [u["user_id"] for u in top] == [BOB]


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/usage/me/history", {"limit": 0}, 400, "limit"),
        ("/usage/me/history", {"before": "nonsense"}, 400, "cursor"),
        ("/usage/me/history", {"before": "2026-01-01T00:00:00+00:00~99999999999999999999"}, 400, "cursor"),
        ("/usage/me/monthly", {"months": "x"}, 400, "months"),
        ("/admin/models", {"since": "2026-13-01"}, 400, "since"),
        ("/admin/models", {"since": "2026-02-01", "until": "2026-01-01"}, 400, "after"),
        ("/admin/summary", {"since": "0001-01-01", "until": "9999-12-31"}, 400, "too long"),
        ("/admin/users/nobody", {}, 404, "unknown user"),
        ("/admin/users/a%00b", {}, 400, "NUL"),
        ("/admin/export", {"format": "xml"}, 400, "format"),
        ("/no/such/path", {}, 404, "Not Found"),
    ],
)
def test_errors_are_json_with_the_right_status(
    api: Api, path: str, params: dict[str, Any], status: int, message: str
) -> None:
    response = api.get(path, ROOT, **params)
    data = body(response, status)
    assert data["status"] == status and message in data["error"], data


def test_openapi_schema_documents_every_endpoint(api: Api) -> None:
    schema = body(api.client.get("/openapi.json"))
    assert {"/usage/me", "/usage/me/history", "/usage/me/monthly", "/admin/users", "/admin/users/{user_id}"} <= set(
        schema["paths"]
    )
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# ---------------------------------------------------------------------------------------------------------------
# Isolation: Ada's token never returns Bob's data, whatever the path and parameters
# ---------------------------------------------------------------------------------------------------------------
BOB_MARKERS = [BOB, "bob-1", "bob-2", "bob@example.com", "bob secret", "claude-haiku-4-5", "0.5"]
USER_PATHS = ["/usage/me", "/usage/me/history", "/usage/me/monthly", "/usage/me/recent"]
ADMIN_PATHS = ["/admin/users", f"/admin/users/{BOB}", "/admin/models", "/admin/daily", "/admin/export"]
texts = st.one_of(st.sampled_from([BOB, ADA, "", "*", "%", "' or 1=1 --", "null"]), st.text(max_size=20))
params = st.dictionaries(
    st.sampled_from(["user_id", "user", "limit", "before", "months", "since", "until", "sub", "role"]),
    st.one_of(texts, st.integers(-5, 2000).map(str)),
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(USER_PATHS + ADMIN_PATHS), query=params, suffix=st.sampled_from(["", "/", "?x=1"]))
def test_adas_token_never_returns_bobs_data(api: Api, path: str, query: dict[str, str], suffix: str) -> None:
    response = api.client.get(
        path + suffix, params=query, headers={"Authorization": f"Bearer {api.tokens[ADA]}", "X-User-Id": BOB}
    )
    assert response.status_code < 500, response.text
    for marker in BOB_MARKERS:
        assert marker not in response.text, (path, query, response.status_code)
    if path in ADMIN_PATHS:
        assert response.status_code in (403, 404, 400)


def test_refused_calls_are_counted_in_the_database_for_the_dashboard(api: Api) -> None:
    before = body(api.get("/admin/refusals", ROOT))
    set_budget(api.db, ADA, "daily", limit_usd=Decimal("0.0001"))
    set_rate_limit(api.db, BOB, rpm=0, tpm=None)
    worst = estimate("gpt-4o-mini", [{"role": "user", "content": "hello"}], 1000)
    for n in range(2):
        with pytest.raises(BudgetExceeded):
            reserve(api.db, ADA, f"refused-by-budget-{n}", worst)
    with pytest.raises(RateLimited):
        reserve(api.db, BOB, "refused-by-rpm", worst)
    after = body(api.get("/admin/refusals", ROOT))
    assert (after["budget"] - before["budget"], after["rate_limit"] - before["rate_limit"]) == (2, 1)
    rows = {(r["user_id"], r["reason"], r["model"]): r["refused"] for r in after["rows"]}
    assert rows[(ADA, "budget", "gpt-4o-mini")] >= 2 and rows[(BOB, "rpm", "gpt-4o-mini")] >= 1
    # counted under the day they happened: a period that ended yesterday has none of them
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    earlier = body(api.get("/admin/refusals", ROOT, since="2020-01-01", until=yesterday))
    assert (earlier["budget"], earlier["rate_limit"], earlier["rows"]) == (0, 0, [])
    assert api.get("/admin/refusals", ADA).status_code == 403  # type: ignore[attr-defined]
