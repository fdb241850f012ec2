"""The explorer's queries read request_logs through an index for every main filter shape, as the planner
chooses on its own (no enable_seqscan = off) over 200,000 calls of 500 users in 90 days, analyzed; so
does the gateway's lookup of a stored response's owner."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from llmtally.analytics.explorer import ExplorerFilter, RequestExplorer, ordered_query
from llmtally.analytics.service import LATENCY_PERCENTILE_SAMPLE
from llmtally.db import Database
from llmtally.db.queries import query
from tests.support.cluster import Cluster
from tests.support.plans import index_names, table_scans

pytestmark = pytest.mark.sql  # the subject is SQL: runs on every server (tests/conftest.py)

ROWS = 200_000
TODAY = dt.datetime.now(dt.UTC).date()
# Users by a power law (user 1 the heaviest), 8 models, 2 % failures, 1 % cache hits, 1 % estimated,
# 5 % tagged; a call's end user is its user, but for 1 call in 1,000 one of 7 members of a team key (about
# 10 calls each in 30 days: the rare end user that a walk along the period's index would not find soon).
FILL = """
insert into public.request_logs (user_profile_id, end_user, litellm_call_id, call_key, model, provider,
    prompt_tokens, completion_tokens, tokens_used, total_cost, cost_status, status, cache_hit, usage_source,
    latency_ms, messages, response, metadata, created_at)
select 'user_' || (1 + floor(500 * r.u ^ 3))::int,
       case when g %% 1000 = 1 then 'member-' || (g / 1000 %% 7) else 'user_' || (1 + floor(500 * r.u ^ 3))::int end,
       'call-' || g, 'call-' || g, 'model-' || (g %% 8),
       'provider-' || (g %% 3), 100, 50, 150 + g %% 1000, (g %% 1000) * 0.00001, 'priced',
       case when g %% 50 = 0 then 'failure' else 'success' end, g %% 100 = 7,
       case when g %% 100 = 3 then 'estimated' else 'provider' end, 100 + g %% 5000,
       jsonb_build_array(jsonb_build_object('role', 'user', 'content', 'question number ' || g)),
       jsonb_build_object('choices', jsonb_build_array(jsonb_build_object('message',
           jsonb_build_object('role', 'assistant', 'content', 'answer number ' || g)))),
       case when g %% 20 = 0 then jsonb_build_object('tags', jsonb_build_array('team-' || (g %% 3))) else '{}' end,
       now() - make_interval(secs => (g::float8 / %(rows)s) * 90 * 86400)
  from generate_series(1, %(rows)s) g, lateral (select random() + 0 * g as u) r
"""

ATTEMPTS = """
insert into public.request_attempts (attempt_key, call_key, litellm_call_id, user_profile_id, model, provider,
    model_group, api_base, status, cost_status, total_cost, latency_ms, created_at)
select call_key, call_key, litellm_call_id, user_profile_id, model, provider, model || '-group',
       '10.0.0.' || (id %% 4), status, cost_status, total_cost, latency_ms, created_at
  from public.request_logs
"""


@pytest.fixture(scope="module")
def big(cluster: Cluster, template: str) -> Iterator[Database]:
    with cluster.database(template) as url, Database(url) as db:
        db.execute(FILL, {"rows": ROWS})
        db.execute(ATTEMPTS)
        db.execute("analyze public.request_logs, public.request_attempts")
        yield db


def _filter(**fields: Any) -> ExplorerFilter:
    return ExplorerFilter(**({"since": TODAY - dt.timedelta(days=29)} | fields))


HEAVY = "user_1"
SHAPES: dict[str, tuple[ExplorerFilter, str | None]] = {
    "newest, last 30 days": (_filter(), None),
    "newest, no period": (ExplorerFilter(), None),
    "one user": (_filter(user_id=HEAVY), None),
    "one user by cost": (_filter(user_id=HEAVY, sort="cost"), None),
    "one model": (_filter(model="model-3"), None),
    "failures": (_filter(status="failure"), None),
    "estimated": (_filter(estimated=True), None),
    "cache hits": (_filter(cache_hit=True), None),
    "one day by cost": (_filter(since=TODAY - dt.timedelta(days=1), until=TODAY, sort="cost"), None),
    "a week by latency": (_filter(since=TODAY - dt.timedelta(days=6), sort="latency"), None),
    "text in a week": (_filter(since=TODAY - dt.timedelta(days=6), text="number 19"), None),
    "one tag": (_filter(tag="team-1"), None),
    "one end user": (_filter(end_user="member-3"), None),
    "one end user, one model": (_filter(end_user="member-3", model="model-1"), None),
    "one user's own end user": (_filter(end_user="user_250"), None),
    "as the user": (_filter(), HEAVY),
    "as the user, by tokens": (_filter(sort="tokens"), HEAVY),
}
# Shapes that must read one index by name: without it the planner walks the whole period along
# request_logs_created_idx for a rare end user (no sequential scan, but every row of 30 days).
NAMED = {
    "one end user": "request_logs_end_user_created_idx",
    "one end user, one model": "request_logs_end_user_created_idx",
    "one user's own end user": "request_logs_end_user_created_idx",
}


def _plan(db: Database, sql: str, params: dict[str, Any], as_user: str | None = None) -> Any:
    if as_user is None:
        return db.fetch_all("explain (format json) " + sql, params)[0]["QUERY PLAN"]
    return db.fetch_all_as_user(as_user, "explain (format json) " + sql, params)[0]["QUERY PLAN"]


def _seq_scans(plan: Any) -> list[tuple[str, str]]:
    scans = table_scans(plan)
    assert scans, "the plan reads no table"
    return [s for s in scans if s[0] == "Seq Scan" and s[1] in ("request_logs", "request_attempts")]


def test_the_explorer_s_list_drill_down_and_latency_queries_read_indexes(big: Database) -> None:
    # Every shape in one test, so the 200,000 rows are filled once per server and worker (xdist's
    # work stealing would otherwise move the module's tests between servers and refill them); every
    # shape is checked and all that fail are named.
    scanned, empty, unread = {}, [], {}
    for shape, (where, viewer) in sorted(SHAPES.items()):
        explorer = RequestExplorer(big, with_content=True, viewer=viewer)
        params = explorer.query_params(where)
        if not explorer.page(where).rows and shape != "text in a week":
            empty.append(shape)  # the shape must have data to read
        plan = _plan(big, ordered_query(where.sort, where.descending), params, viewer)
        seq = _seq_scans(plan)
        if seq:
            scanned[shape] = seq
        if shape in NAMED and NAMED[shape] not in index_names(plan):
            unread[shape] = sorted(index_names(plan))
    assert empty == [] and scanned == {} and unread == {}, (empty, scanned, unread)
    _drill_down_and_latency_read_indexes(big)
    _the_gateway_s_response_owner_lookup_is_one_index_probe(big)


def _drill_down_and_latency_read_indexes(big: Database) -> None:
    row = big.fetch_one("select id, call_key from public.request_logs order by id desc limit 1")
    assert row is not None
    assert (
        _seq_scans(_plan(big, query("explorer_request"), {"id": row["id"], "user_id": None, "with_content": True}))
        == []
    )
    assert _seq_scans(_plan(big, query("explorer_attempts"), {"call_key": row["call_key"], "user_id": None})) == []
    period = {"since": TODAY - dt.timedelta(days=6), "until": TODAY + dt.timedelta(days=1)}
    for name in ("latency_percentiles_by_model", "latency_percentiles_by_deployment"):
        assert _seq_scans(_plan(big, query(name), {**period, "sample": LATENCY_PERCENTILE_SAMPLE})) == [], name
    month = {"since": TODAY - dt.timedelta(days=29), "until": TODAY + dt.timedelta(days=1), "limit": 50}
    assert _seq_scans(_plan(big, query("tag_usage"), month)) == [], "the dashboard's cost by tag"


def _index_names(plan: object) -> set[str]:
    if isinstance(plan, dict):
        own = {str(plan["Index Name"])} if "Index Name" in plan else set()
        return own.union(*(_index_names(v) for v in plan.values()))
    if isinstance(plan, list):
        return set().union(*(_index_names(v) for v in plan))
    return set()


def _the_gateway_s_response_owner_lookup_is_one_index_probe(big: Database) -> None:
    # A miss (an id the heaviest user never made, which any key may send) is the worst case: without
    # request_logs_response_id_idx it read all 25,000 calls of that user, or the whole table newest first.
    params = {"user_id": HEAVY, "response_id": "resp_never_made"}
    plan = _plan(big, query("gateway_owned_response"), params, HEAVY)
    assert _seq_scans(plan) == [] and _index_names(plan) == {"request_logs_response_id_idx"}, plan
