"""Pages' access rules and content mode, and /metrics (in process, real database)."""

from __future__ import annotations

import dataclasses
import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmtally import Ledger, Settings
from llmtally.api_tokens import create_token
from llmtally.app.web import WebState, install_web
from llmtally.budgets import budgets_in_force
from tests.support.web_seed import ADA, BOB, ROOT, event


def client(state: WebState, host: str = "testclient") -> TestClient:
    app = FastAPI()
    install_web(app, state)
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False, client=(host, 50000))


def bearer(state: WebState, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(state.db, user)[0]}"}


def test_pages_redirect_to_login_refuse_non_admins_and_escape_content(state: WebState) -> None:
    with client(state) as web:
        for path in ("/admin", "/usage", f"/admin/users/{ADA}"):
            response = web.get(path)
            assert (response.status_code, response.headers["location"]) == (303, "/login")
        refused = web.get("/admin", headers=bearer(state, ADA))
        assert refused.status_code == 403 and "administrators" in refused.text
        assert web.get(f"/admin/users/{BOB}", headers=bearer(state, ADA)).status_code == 403
        assert web.get("/admin", headers=bearer(state, ROOT)).status_code == 200
        assert web.get("/admin/users/nobody", headers=bearer(state, ROOT)).status_code == 404
        page = web.get("/usage", headers=bearer(state, ADA))
        assert page.status_code == 200
        assert "question ada-3" in page.text and "answer ada-1" in page.text  # content mode full
        assert "bob" not in page.text.lower()
        assert "No requests yet." in web.get("/usage", headers=bearer(state, ROOT)).text
        assert web.get("/llmtally-static/vendor/chart.umd.min.js").text.startswith("/*!\n * Chart.js v4.6.1")


def test_an_unpriced_model_is_unpriced_on_the_page_never_zero(state: WebState) -> None:
    # Ada's acme-internal call has no price: its row says so, and the totals count it apart.
    with client(state) as web:
        page = web.get("/usage", headers=bearer(state, ADA)).text
        admin_page = web.get(f"/admin/users/{ADA}", headers=bearer(state, ROOT)).text
    for html in (page, admin_page):
        row = html[html.index("<td>acme-internal</td>") :].split("</tr>")[0]
        assert row.endswith('<td class="n">unpriced</td>')
        assert "3 requests · $0.001000 + 1 unpriced" in html


def test_a_cancelled_reply_shows_its_text_not_json(state: WebState) -> None:
    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(event("stopped", ADA, status="cancelled", response={"partial": "half an ans"}))
        assert ledger.flush_sync()
    with client(state) as web:
        page = web.get("/usage", headers=bearer(state, ADA)).text
    row = page[page.index('<tr class="status-cancelled">') :].split("</tr>")[0]
    assert "<td>cancelled" in row and '<td class="content">half an ans</td>' in row and "partial" not in row


def test_content_mode_none_shows_no_content(state: WebState) -> None:
    with client(dataclasses.replace(state, show_content=False)) as web:
        page = web.get("/usage", headers=bearer(state, ADA))
        assert page.status_code == 200 and "ada-3" not in page.text and "LLMTALLY_CONTENT=none" in page.text
        recent = web.get("/api/v1/usage/me/recent", headers=bearer(state, ADA)).json()
        assert recent and all(r["messages"] is None and r["response"] is None for r in recent)


def test_html_in_recorded_content_is_escaped(state: WebState) -> None:
    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(event("xss", ADA, messages=[{"role": "user", "content": "<script>alert(1)</script>"}]))
        assert ledger.flush_sync()
    with client(state) as web:
        page = web.get("/usage", headers=bearer(state, ADA)).text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def written(text: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name == "llmtally_events_written":
            return sum(s.value for s in family.samples if s.name == "llmtally_events_written_total")
    raise AssertionError("llmtally_events_written missing")


def test_metrics_parse_and_move_after_calls(state: WebState) -> None:
    with client(state, host="127.0.0.1") as web:
        before = web.get("/metrics")
        assert before.status_code == 200 and before.headers["content-type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(before.text)}
        assert {
            "llmtally_events_accepted",
            "llmtally_queue_depth",
            "llmtally_batch_size",
            "llmtally_flush_seconds",
        } <= (names)
        with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
            for _ in range(3):
                ledger.record(event(f"m-{uuid.uuid4()}", ADA))
            assert ledger.flush_sync()
        assert written(web.get("/metrics").text) == written(before.text) + 3


def test_metrics_access_rules(state: WebState) -> None:
    with client(state) as web:  # not a local client, no token configured
        assert web.get("/metrics").status_code == 403
    with client(dataclasses.replace(state, metrics_token="s3cret-metrics"), host="127.0.0.1") as web:
        assert web.get("/metrics").status_code == 401  # a token is configured: even local clients need it
        assert web.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert web.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"}).status_code == 200


def test_usage_pages_show_the_budget_in_force_and_what_remains(state: WebState) -> None:
    state.db.execute("insert into budgets (user_profile_id, period, limit_usd) values (null, 'monthly', 1000)")
    state.db.execute(
        "insert into budgets (user_profile_id, period, limit_tokens, hard) values (%s, 'daily', 123456, false)", (ADA,)
    )
    with client(state) as web:
        ada = web.get("/usage", headers=bearer(state, ADA)).text
        bob = web.get("/usage", headers=bearer(state, BOB)).text
        admin = web.get(f"/admin/users/{ADA}", headers=bearer(state, ROOT)).text
    spent = state.db.fetch_one("select total_cost from user_profiles where user_id = %s", (ADA,))["total_cost"]
    assert 'id="budget"' in ada and "123,456 tokens" in ada and "daily (warning only)" in ada
    assert f"{1000 - spent:.2f}" in ada or f"{1000 - spent:.4f}" in ada  # what remains of the default
    assert 'id="budget"' in bob and "123,456" not in bob  # Bob has only the default
    assert "123,456 tokens" in admin
    [daily] = [b for b in budgets_in_force(state.db, ADA, as_user=False) if b["period"] == "daily"]
    width = round(daily["spent_tokens"] / 123456 * 100, 1)
    assert daily["spent_tokens"] > 0 and f'class="spent" style="width: {width}%"' in ada  # the bar of the limit


def test_metrics_without_a_token_are_refused_unless_the_server_listens_on_loopback(state: WebState) -> None:
    with client(dataclasses.replace(state, metrics_local=False), host="127.0.0.1") as web:
        assert web.get("/metrics").status_code == 403
    with client(dataclasses.replace(state, metrics_local=False, metrics_token="t0ken"), host="203.0.113.9") as web:
        assert web.get("/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 200
