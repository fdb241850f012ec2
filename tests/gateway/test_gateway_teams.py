"""Team keys through the gateway: the team is billed, a key made with end users stores the request's `user`,
and a team budget holds across concurrent requests from several client processes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from llmtally import budgets as budget_api
from llmtally import teams
from llmtally.api_tokens import create_token
from tests.support.gateway import RunningGateway
from tests.support.gateway_clients import MAX_TOKENS, MESSAGES
from tests.support.invariants import assert_counters_match_ledger
from tests.support.upstream import Upstream

ROOT = Path(__file__).resolve().parents[2]


def new_team(gateway: RunningGateway, *members: str) -> str:
    team = teams.create_team(gateway.db, f"t{uuid.uuid4().hex[:10]}")
    for member in members:
        gateway.runtime.ledger.upsert_user_sync(member)
        teams.add_member(gateway.db, team, member)
    return team


def test_a_team_key_bills_the_team_and_names_the_end_user_only_if_it_may(gateway: RunningGateway) -> None:
    team = new_team(gateway, "password_tess")
    naming, _ = create_token(gateway.db, team, name="team app", end_users=True)
    plain, _ = create_token(gateway.db, team, name="team script")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "user": "password_tess"}
    for token in (naming, plain):
        answer = httpx.post(
            f"{gateway.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
    rows = gateway.wait_for_rows(team, 2)
    # both billed to the team; only the key made with end users keeps who was behind the call
    assert sorted(str(r["end_user"]) for r in rows) == sorted(["password_tess", team])
    assert {r["user_profile_id"] for r in rows} == {team}
    assert gateway.db.fetch_all("select count(*) as n from request_logs where user_profile_id = 'password_tess'") == [
        {"n": 0}
    ]
    bad = httpx.post(
        f"{gateway.base_url}/chat/completions", json={**body, "user": 42}, headers={"Authorization": f"Bearer {naming}"}
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "user"


def test_300_requests_from_3_processes_through_one_team_key_admit_exactly_what_the_team_budget_fits(
    gateway: RunningGateway, upstream: Upstream
) -> None:
    team = new_team(gateway, "password_ann", "password_ben")
    token, _ = create_token(gateway.db, team, name="load", end_users=True)
    from llmtally.integrations.litellm.models import count_tokens

    per_call = count_tokens("gpt-4o-mini", messages=MESSAGES) + MAX_TOKENS  # reserved = billed, exactly
    fits = 120
    budget_api.set_budget(gateway.db, team, "monthly", limit_tokens=per_call * fits)
    billed_before = len(upstream.billed_for("counted"))
    clients = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.support.gateway_clients", gateway.url, token, "100"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = [json.loads(client.communicate(timeout=240)[0]) for client in clients]
    assert all(client.returncode == 0 for client in clients)
    assert [o["others"] for o in outcomes] == [[], [], []]
    assert sum(o["ok"] for o in outcomes) == fits and sum(o["budget"] for o in outcomes) == 300 - fits
    rows = gateway.wait_for_rows(team, fits, timeout=60)
    assert len(upstream.billed_for("counted")) - billed_before == fits  # the refused never reached the provider
    assert sum(r["tokens_used"] for r in rows) == per_call * fits  # spent = the limit, not a token over
    assert {r["end_user"] for r in rows} == {"member-0", "member-1", "member-2"}
    (status,) = budget_api.budget_status(gateway.db, team)
    assert (status.spent_tokens, status.reserved_tokens, status.remaining_tokens) == (per_call * fits, 0, 0)
    assert gateway.db.fetch_all("select count(*) as n from budget_reservations where user_id = %s", (team,)) == [
        {"n": 0}
    ]
    refused = gateway.db.fetch_all("select sum(refused)::int as n from refusals where user_id = %s", (team,))
    assert refused == [{"n": 300 - fits}]
    assert_counters_match_ledger(gateway.db)
