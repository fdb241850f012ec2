"""Teams in the pages and the API: a member's /usage shows the team's month and budget bar, a non-member's
does not; the dashboard's data lists every team for administrators only."""

from __future__ import annotations

from decimal import Decimal

from fastapi.testclient import TestClient

from llmtally import Ledger, Settings, teams
from llmtally import budgets as budget_api
from llmtally.api_tokens import create_token
from llmtally.app.web import WebState
from tests.support.web_seed import ADA, BOB, ROOT, event


def with_team(state: WebState) -> str:
    team = teams.create_team(state.db, "research", title="Research")
    teams.add_member(state.db, "research", ADA)
    with Ledger(state.db.url, settings=Settings(flush_interval_ms=20)) as ledger:
        for n in range(3):
            ledger.record(event(f"team-{n}", team, end_user=ADA, reported_cost=0.25))
        assert ledger.flush_sync()
    budget_api.set_budget(state.db, team, "monthly", limit_usd=Decimal("1"))
    return team


def bearer(state: WebState, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(state.db, user)[0]}"}


def test_a_member_sees_the_team_s_month_and_budget_and_nobody_else_does(state: WebState, site: TestClient) -> None:
    team = with_team(state)
    page = site.get("/usage", headers=bearer(state, ADA))
    assert page.status_code == 200 and 'id="teams"' in page.text
    assert "Research" in page.text and team in page.text
    assert "monthly budget: $0.750000 of $1.000000" in page.text  # three calls of $0.25 against $1
    assert 'style="width: 75.0%"' in page.text
    assert "question team-0" not in page.text  # the team's calls are not the member's to read
    other = site.get("/usage", headers=bearer(state, BOB))
    assert other.status_code == 200 and 'id="teams"' not in other.text and team not in other.text

    [mine] = site.get("/api/v1/usage/me/teams", headers=bearer(state, ADA)).json()
    assert (mine["team_id"], mine["requests"], Decimal(mine["cost"])) == (team, 3, Decimal("0.75"))
    assert site.get("/api/v1/usage/me/teams", headers=bearer(state, BOB)).json() == []


def test_administrators_list_every_team_with_its_members(state: WebState, site: TestClient) -> None:
    team = with_team(state)
    listed = site.get("/api/v1/admin/teams", headers=bearer(state, ROOT))
    assert listed.status_code == 200
    [row] = listed.json()
    assert (row["team_id"], row["members"], row["requests"]) == (team, [ADA], 3)
    assert site.get("/api/v1/admin/teams", headers=bearer(state, ADA)).status_code == 403
    dashboard = site.get("/admin", headers=bearer(state, ROOT)).text
    assert 'id="teams"' in dashboard
    user_page = site.get(f"/admin/users/{team}", headers=bearer(state, ROOT))  # the team's own page
    assert user_page.status_code == 200 and "question team-0" in user_page.text
