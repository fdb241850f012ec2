"""Administration in the pages: budgets, limits, prices, tokens and users changed through forms that carry
a CSRF token, each change in the audit log with who made it. In process, over a real database."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally import budgets, prices
from llmtally.api_tokens import list_tokens
from llmtally.app.web import WebState, install_web
from llmtally.audit import audit_entries
from llmtally.db import Database
from tests.support.sessions import session_jwt, use_secret
from tests.support.web_seed import ADA, BOB, ROOT


@pytest.fixture
def browser(seeded_db: Database, state: WebState, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The pages as a browser of the administrator sees them: with the login's session cookie."""
    use_secret(monkeypatch)
    app = FastAPI()
    install_web(app, state)
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        client.cookies.set("access_token", session_jwt(seeded_db, ROOT))
        yield client


def csrf_of(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert found, "the page's forms carry a CSRF token"
    return found.group(1)


def post(client: TestClient, path: str, **fields: str) -> tuple[int, str]:
    response = client.post(path, data={"csrf": csrf_of(client, path), **fields})
    return response.status_code, response.text


def notice(html: str) -> str:
    found = re.search(r'id="notice"[^>]*>([^<]*)<', html) or re.search(r'id="form-error"[^>]*>([^<]*)<', html)
    assert found, html[:2000]
    return found.group(1).replace("&#39;", "'")


def test_only_administrators_reach_the_pages(seeded_db: Database, browser: TestClient) -> None:
    anonymous = TestClient(browser.app, follow_redirects=False)
    assert anonymous.get("/admin/budgets").status_code == 303
    browser.cookies.set("access_token", session_jwt(seeded_db, ADA))
    for path in ("/admin/budgets", "/admin/prices", "/admin/tokens", "/admin/users", "/admin/audit"):
        assert browser.get(path).status_code == 403, path
    refused = browser.post("/admin/budgets", data={"action": "set_budget", "user": ADA, "usd": "100"})
    assert refused.status_code == 403
    assert budgets.list_budgets(seeded_db) == []


def test_a_form_without_the_sessions_csrf_token_changes_nothing(seeded_db: Database, browser: TestClient) -> None:
    form = {"action": "set_budget", "user": ADA, "period": "monthly", "usd": "5"}
    for token in ({}, {"csrf": "0" * 64}):
        refused = browser.post("/admin/budgets", data=form | token)
        assert refused.status_code == 403 and "did not come from this site" in refused.text
    # another login's token is not this one's
    other = TestClient(browser.app)
    other.cookies.set("access_token", session_jwt(seeded_db, ROOT))
    stolen = csrf_of(other, "/admin/budgets")
    assert browser.post("/admin/budgets", data=form | {"csrf": stolen}).status_code == 403
    assert budgets.list_budgets(seeded_db) == [] and audit_entries(seeded_db) == []


def test_a_budget_set_in_the_page_holds_and_shows_spent_and_reserved_as_a_bar(
    seeded_db: Database, browser: TestClient
) -> None:
    status, html = post(browser, "/admin/budgets", action="set_budget", user=ADA, period="lifetime", usd="0.004")
    assert status == 200 and notice(html) == f"Set the lifetime budget of {ADA}."
    [budget] = budgets.list_budgets(seeded_db)
    assert (budget.user_profile_id, budget.limit_usd, budget.hard) == (ADA, Decimal("0.004"), False)
    [in_force] = budgets.budget_status(seeded_db, ADA)
    spent = float(in_force.spent_usd / Decimal("0.004") * 100)
    bar = re.search(r'class="spent" style="width: ([0-9.]+)%"', browser.get("/admin/budgets").text)
    assert bar and float(bar.group(1)) == pytest.approx(min(spent, 100), abs=0.1)
    [entry] = audit_entries(seeded_db)
    assert (entry.actor, entry.what, entry.subject) == (f"web:{ROOT}", "set budget", f"{ADA} lifetime")

    status, html = post(browser, "/admin/budgets", action="delete_budget", user=ADA, period="lifetime")
    assert status == 200 and budgets.list_budgets(seeded_db) == []
    assert audit_entries(seeded_db)[0].what == "deleted budget"


def test_a_bad_form_says_what_is_wrong_keeps_the_values_and_stores_nothing(
    seeded_db: Database, browser: TestClient
) -> None:
    status, html = post(browser, "/admin/budgets", action="set_budget", user=ADA, period="monthly", usd="ten")
    assert status == 400 and "ten" in notice(html) and 'value="ten"' in html
    status, html = post(browser, "/admin/budgets", action="set_budget", user="nobody", period="monthly", usd="1")
    assert status == 400 and "nobody" in notice(html)
    status, html = post(browser, "/admin/budgets", action="set_limit", user=BOB, rpm="-3")
    assert status == 400 and "requests per minute" in notice(html)
    status, html = post(browser, "/admin/prices", action="set_price", model="acme-internal", input="1")
    assert status == 400 and "output price" in notice(html)
    assert budgets.list_budgets(seeded_db) == [] and budgets.list_rate_limits(seeded_db) == []
    assert prices.list_prices(seeded_db) == [] and audit_entries(seeded_db) == []


def test_rate_limits_for_the_default_and_a_user(seeded_db: Database, browser: TestClient) -> None:
    assert post(browser, "/admin/budgets", action="set_limit", user="", rpm="60")[0] == 200
    status, html = post(browser, "/admin/budgets", action="set_limit", user=BOB, rpm="5", tpm="1000")
    assert status == 200
    assert notice(html) == f"Set the rate limit of {BOB}: 5 requests and 1,000 tokens per minute."
    assert [(r.user_profile_id, r.rpm, r.tpm) for r in budgets.list_rate_limits(seeded_db)] == [
        (None, 60, None),
        (BOB, 5, 1000),
    ]
    assert budgets.get_rate_limit(seeded_db, ADA) == budgets.RateLimit(None, 60, None)
    assert [e.subject for e in audit_entries(seeded_db)] == [BOB, "default"]


def test_a_price_set_in_the_page_reprices_stored_calls_and_says_how_many(
    seeded_db: Database, browser: TestClient
) -> None:
    status, html = post(
        browser, "/admin/prices", action="set_price", model="acme-internal", input="1000", output="2000", reprice="on"
    )
    assert status == 200 and notice(html) == "Set the price of acme-internal and repriced 1 stored call."
    cost = seeded_db.fetch_one("select total_cost from request_logs where litellm_call_id = 'ada-3'")
    assert cost is not None and cost["total_cost"] > 0
    assert [(e.what, e.subject) for e in audit_entries(seeded_db)] == [
        ("repriced stored costs", "acme-internal"),
        ("set price", "acme-internal"),
    ]
    status, html = post(browser, "/admin/prices", action="delete_price", model="acme-internal")
    assert status == 200 and prices.list_prices(seeded_db) == []
    after = seeded_db.fetch_one("select total_cost from request_logs where litellm_call_id = 'ada-3'")
    assert after is not None and after["total_cost"] is None, "no price left: unpriced again, never a silent 0"


def test_a_token_is_shown_once_works_and_is_refused_once_revoked(seeded_db: Database, browser: TestClient) -> None:
    status, html = post(browser, "/admin/tokens", action="create", user=BOB, name="notebook", days="30")
    found = re.search(r'id="new-token-value">(lt_[A-Za-z0-9_-]+)<', html)
    assert status == 200 and found
    token = found.group(1)
    assert token not in browser.get("/admin/tokens").text, "shown once only"
    assert token not in str([e.after for e in audit_entries(seeded_db)]), "neither the token nor its hash is logged"
    api = TestClient(browser.app)
    assert api.get("/api/v1/usage/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    [record] = [t for t in list_tokens(seeded_db, BOB) if t.name == "notebook"]
    assert record.expires_at is not None
    status, html = post(browser, "/admin/tokens", action="revoke", token=str(record.id))
    assert status == 200 and "refused from now on" in notice(html)
    assert api.get("/api/v1/usage/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert [e.what for e in audit_entries(seeded_db)] == ["revoked API token", "created API token"]
    assert record.end_users is False


def test_a_team_key_made_in_the_form_names_end_users(seeded_db: Database, browser: TestClient) -> None:
    from llmtally import teams

    team = teams.create_team(seeded_db, "pages")
    status, html = post(browser, "/admin/tokens", action="create", user=team, name="team app", end_users="on")
    assert status == 200 and "Created token" in notice(html)
    [record] = list_tokens(seeded_db, team)
    assert record.end_users is True
    assert "names end users" in browser.get("/admin/tokens").text


def test_a_user_is_deleted_only_when_the_id_is_typed(seeded_db: Database, browser: TestClient) -> None:
    status, html = post(browser, "/admin/users", action="delete", user=BOB, confirm="bo")
    assert status == 400 and "type the user id" in notice(html)
    status, html = post(browser, "/admin/users", action="delete", user=ROOT, confirm=ROOT)
    assert status == 400 and "your own login" in notice(html)
    assert seeded_db.fetch_one("select 1 from user_profiles where user_id = %s", (BOB,)) is not None
    status, html = post(browser, "/admin/users", action="delete", user=BOB, confirm=BOB)
    assert status == 200 and notice(html).startswith(f"Deleted {BOB}: 2 calls kept as anonymous usage")
    assert seeded_db.fetch_one("select 1 from user_profiles where user_id = %s", (BOB,)) is None
    assert BOB not in browser.get("/admin/users").text
    assert ("deleted user", BOB, f"web:{ROOT}") in [(e.what, e.subject, e.actor) for e in audit_entries(seeded_db)]


def test_the_audit_page_lists_changes_and_filters_by_who(seeded_db: Database, browser: TestClient) -> None:
    post(browser, "/admin/budgets", action="set_budget", user=ADA, period="daily", usd="2")
    post(browser, "/admin/budgets", action="set_budget", user=BOB, period="daily", usd="3")
    page = browser.get("/admin/audit").text
    assert page.count("set budget") == 2 and f"web:{ROOT}" in page
    only_bob = browser.get("/admin/audit", params={"who": BOB}).text
    assert f"{BOB} daily" in only_bob and f"{ADA} daily" not in only_bob
    assert browser.get("/admin/audit", params={"before": "x"}).status_code == 400
