"""The explorer's pages in process over a real database: access rules, readable 400s, 404 for another
user's call, the end-user filter across pages and in the export, the latency percentiles in the JSON API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re

from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmtally.analytics.explorer import PAGE_SIZE
from llmtally.api_tokens import create_token
from llmtally.app.web import WebState, install_web
from tests.support.web_seed import ADA, BOB, ROOT, Api


def client(state: WebState) -> TestClient:
    app = FastAPI()
    install_web(app, state)
    return TestClient(app, raise_server_exceptions=False, follow_redirects=False)


def bearer(state: WebState, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(state.db, user)[0]}"}


def link(page: str, element_id: str) -> str:
    """The href of the link with this id, as a browser follows it."""
    found = re.search(f'<a id="{element_id}" href="([^"]*)"', page)
    assert found is not None, element_id
    return html.unescape(found.group(1))


def request_id(state: WebState, call: str) -> int:
    row = state.db.fetch_one("select id from public.request_logs where call_key = %s", (call,))
    assert row is not None
    return int(row["id"])


def test_admin_explorer_is_for_administrators_and_lists_everyone(state: WebState) -> None:
    with client(state) as web:
        assert web.get("/admin/requests").headers["location"] == "/login"
        assert web.get("/usage/requests").headers["location"] == "/login"
        refused = web.get("/admin/requests", headers=bearer(state, ADA))
        assert refused.status_code == 403 and 'id="forbidden"' in refused.text
        assert web.get(f"/admin/requests/{request_id(state, 'bob-1')}", headers=bearer(state, ADA)).status_code == 403
        page = web.get("/admin/requests", headers=bearer(state, ROOT))
        assert page.status_code == 200
        assert "ada-1" in page.text and "bob secret" in page.text  # every user's calls, with their prompts
        only_bob = web.get("/admin/requests", params={"user": BOB}, headers=bearer(state, ROOT)).text
        assert "bob secret" in only_bob and "question ada-1" not in only_bob
        failures = web.get("/admin/requests", params={"status": "failure"}, headers=bearer(state, ROOT)).text
        assert "RateLimitError" in failures and "question ada-1" not in failures
        assert 'href="/admin/requests">Requests</a>' in page.text  # the nav link


def test_bad_parameters_give_the_page_with_a_message_and_400(state: WebState) -> None:
    with client(state) as web:
        for params, message in [
            ({"sort": "id desc"}, "sort must be one of time, cost, tokens, latency"),
            ({"since": "2026-13-01"}, "since must be a date like 2026-01-31"),
            ({"page": "-1"}, "page must be a whole number"),
        ]:
            response = web.get("/admin/requests", params=params, headers=bearer(state, ROOT))
            assert response.status_code == 400
            assert message in response.text and 'id="explorer-error"' in response.text
            assert "Traceback" not in response.text
        mine = web.get("/usage/requests", params={"user": BOB}, headers=bearer(state, ADA))
        assert mine.status_code == 400 and "only administrators filter by user" in mine.text


def test_your_requests_show_only_yours_and_another_users_call_is_404(state: WebState) -> None:
    with client(state) as web:
        mine = web.get("/usage/requests", headers=bearer(state, ADA))
        assert mine.status_code == 200 and "question ada-1" in mine.text and "bob" not in mine.text.lower()
        own = web.get(f"/usage/requests/{request_id(state, 'ada-2')}", headers=bearer(state, ADA))
        assert own.status_code == 200 and "RateLimitError: slow down" in own.text and 'id="attempts"' in own.text
        assert "not streamed" in own.text
        for other in (str(request_id(state, "bob-1")), "999999999", "abc", "1" * 30):
            page = web.get(f"/usage/requests/{other}", headers=bearer(state, ADA))
            assert page.status_code == 404 and "bob secret" not in page.text and 'id="not-found"' in page.text
        detail = web.get(f"/admin/requests/{request_id(state, 'bob-1')}", headers=bearer(state, ROOT))
        assert detail.status_code == 200 and "bob secret" in detail.text
        assert "first token after 85 ms" in detail.text and '<td class="n">85 ms</td>' in detail.text


def test_without_stored_content_there_is_no_text_search(state: WebState) -> None:
    with client(dataclasses.replace(state, show_content=False)) as web:
        page = web.get("/admin/requests", headers=bearer(state, ROOT))
        assert page.status_code == 200 and 'name="q"' not in page.text and "question ada-1" not in page.text
        refused = web.get("/admin/requests", params={"q": "question"}, headers=bearer(state, ROOT))
        assert refused.status_code == 400 and "text search needs stored content" in refused.text


def test_latency_percentiles_in_the_api(api: Api) -> None:
    body = api.get("/admin/latency-percentiles", ROOT).json()  # type: ignore[attr-defined]
    models = {(m["model"], m["provider"]): m for m in body["by_model"]}
    # this month's gpt-4o-mini calls: ada-1, bob-1 and the anonymous one (120 ms), ada-2 (3000 ms, failed)
    mini = models[("gpt-4o-mini", "openai")]
    assert (mini["requests"], mini["failures"], mini["p50_ms"], mini["p99_ms"]) == (4, 1, 120, 3000)
    assert (mini["streamed"], mini["first_token_p50_ms"], mini["first_token_p95_ms"]) == (1, 85, 85)  # bob-1's
    assert api.get("/admin/latency-percentiles", ADA).status_code == 403  # type: ignore[attr-defined]


def test_the_export_link_takes_the_day_after_the_last_one_shown(state: WebState) -> None:
    with client(state) as web:
        page = web.get(
            "/admin/requests",
            params={"since": "2026-01-01", "until": "2026-01-31", "user": ADA},
            headers=bearer(state, ROOT),
        ).text
    assert (
        'href="/api/v1/admin/export?since=2026-01-01&amp;until=2026-02-01&amp;user=password_ada&amp;format=csv"' in page
    )


def test_recorded_html_is_shown_as_text_in_the_drill_down(state: WebState) -> None:
    from llmtally import Ledger, Settings
    from tests.support.web_seed import event

    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(event("xss", ADA, messages=[{"role": "user", "content": "<script>alert(1)</script>"}]))
        assert ledger.flush_sync()
    with client(state) as web:
        listed = web.get("/usage/requests", headers=bearer(state, ADA)).text
        detail = web.get(f"/usage/requests/{request_id(state, 'xss')}", headers=bearer(state, ADA)).text
    for page in (listed, detail):
        assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_cancelled_reply_is_shown_as_text_marked_cancelled(state: WebState) -> None:
    from llmtally import Ledger, Settings
    from tests.support.web_seed import event

    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        ledger.record(event("stopped", ADA, status="cancelled", response={"partial": "Once upon a"}))
        assert ledger.flush_sync()
    with client(state) as web:
        page = web.get(f"/usage/requests/{request_id(state, 'stopped')}", headers=bearer(state, ADA)).text
    assert "Once upon a" in page and "partial" not in page
    assert '<span class="note">cancelled</span>' in page


def test_the_end_user_filter_keeps_its_value_across_pages_and_in_the_export(state: WebState) -> None:
    from llmtally import Ledger, Settings
    from tests.support.web_seed import NOW, event

    team, ann, cy = "team:research", "member-ann", "member-cy"
    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        for n in range(PAGE_SIZE + 2):  # more than a page of one member's calls through the team's key
            ledger.record(event(f"ann-{n}", team, end_user=ann, created_at=NOW - dt.timedelta(minutes=n + 1)))
        ledger.record(event("cy-1", team, end_user=cy, messages=[{"role": "user", "content": "cy's question"}]))
        ledger.record(event("ada-for-ann", ADA, end_user=ann, created_at=NOW - dt.timedelta(days=1)))
        assert ledger.flush_sync()
    root = bearer(state, ROOT)
    with client(state) as web:
        first = web.get("/admin/requests", params={"end_user": ann}, headers=root)
        assert first.status_code == 200
        assert 'name="end_user" value="member-ann"' in first.text  # the form keeps it
        assert first.text.count("data-id=") == PAGE_SIZE and "cy&#39;s question" not in first.text
        assert first.text.count('<span class="muted small end-user">for member-ann</span>') == PAGE_SIZE
        assert "end_user=member-ann&amp;format=csv" in first.text  # the export link keeps it
        next_link = link(first.text, "next-page")
        assert "end_user=member-ann" in next_link and "page=2" in next_link  # and the next page's
        second = web.get(next_link, headers=root)
        assert second.status_code == 200 and 'name="end_user" value="member-ann"' in second.text
        assert second.text.count("data-id=") == 3  # the last two of the team's and Ada's own
        assert "question ada-for-ann" in second.text and 'id="next-page"' not in second.text
        assert "end_user=member-ann" in link(second.text, "previous-page")
        narrowed = web.get("/admin/requests", params={"end_user": ann, "user": ADA}, headers=root).text
        assert narrowed.count("data-id=") == 1 and "question ada-for-ann" in narrowed
        # the drill-down names the end user, linked to their calls, for the administrator and the user
        detail = web.get(f"/admin/requests/{request_id(state, 'cy-1')}", headers=root).text
        assert '<td id="call-end-user"><a href="/admin/requests?end_user=member-cy"' in detail
        own = web.get(f"/usage/requests/{request_id(state, 'ada-for-ann')}", headers=bearer(state, ADA)).text
        assert '<td id="call-end-user"><a href="/usage/requests?end_user=member-ann"' in own
        plain = web.get(f"/usage/requests/{request_id(state, 'ada-1')}", headers=bearer(state, ADA)).text
        assert 'id="call-end-user"' not in plain  # no end user, or the user themself: no row
        # a user narrows their own calls: the team's calls naming the same end user are not theirs
        mine = web.get("/usage/requests", params={"end_user": ann}, headers=bearer(state, ADA))
        assert mine.status_code == 200 and 'name="end_user" value="member-ann"' in mine.text
        assert mine.text.count("data-id=") == 1 and "question ada-for-ann" in mine.text
        for who, path in ((root, "/admin/requests"), (bearer(state, ADA), "/usage/requests")):
            refused = web.get(path, params={"end_user": "x" * 501}, headers=who)
            assert refused.status_code == 400 and 'id="explorer-error"' in refused.text
            assert "end_user must be at most 500 characters, without NUL" in refused.text
            assert "Traceback" not in refused.text
