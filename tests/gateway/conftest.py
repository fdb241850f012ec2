"""One gateway per module (uvicorn in a thread) over its own migrated database and a local upstream.

Each test bills a user of its own (``caller``), so tests share the server without seeing each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmtally.api_tokens import create_token
from tests.support.cluster import Cluster
from tests.support.gateway import RunningGateway, serve_gateway
from tests.support.server import free_port
from tests.support.upstream import Upstream

CONFIG = """\
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: {ok}
      api_key: os.environ/LLMTALLY_TEST_UPSTREAM_KEY
  - model_name: slow
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{slow}", api_key: test}}
  - model_name: broken
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{broken}", api_key: test}}
  - model_name: midfail
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{midfail}", api_key: test}}
  - model_name: flaky
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{flaky}", api_key: test}}
  - model_name: primary
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{primary}", api_key: test}}
  - model_name: backup
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{backup}", api_key: test}}
  - model_name: instruct
    litellm_params: {{model: text-completion-openai/gpt-3.5-turbo-instruct, api_base: "{ok}", api_key: test}}
  - model_name: cached
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{cached}", api_key: test}}
  - model_name: counted
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{counted}", api_key: test}}
  - model_name: refused
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{refused}", api_key: test}}
  - model_name: nousage
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{nousage}", api_key: test}}
  - model_name: unreachable
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{unreachable}", api_key: test}}
  - model_name: text-embedding-3-small
    litellm_params: {{model: openai/text-embedding-3-small, api_base: "{ok}", api_key: test}}
router_settings:
  num_retries: 1
  fallbacks: [{{"primary": ["backup"]}}]
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with Upstream() as up:
        yield up


def write_config(home: Path, upstream: Upstream) -> Path:
    """The tests' gateway config (:data:`CONFIG`) at the upstream's behaviours, in ``home``."""
    config = home / "gateway.yaml"
    behaviours = {"ok": "ok", "slow": "slow", "broken": "fail500", "primary": "fail500-p", "backup": "ok-backup"}
    behaviours.update(midfail="midfail", cached="cached", counted="counted", refused="fail400", nousage="nousage")
    config.write_text(
        CONFIG.format(
            **{name: upstream.api_base(b) for name, b in behaviours.items()},
            flaky=upstream.api_base("flaky1"),
            unreachable=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        )
    )
    return config


@contextmanager
def running_gateway(
    cluster: Cluster, template: str, upstream: Upstream, home: Path, *, direct: bool = True
) -> Iterator[RunningGateway]:
    config = write_config(home, upstream)
    mp = pytest.MonkeyPatch()
    mp.setenv("LLMTALLY_TEST_UPSTREAM_KEY", "test-key")  # read once, when the config is loaded
    try:
        with cluster.database(template) as url, serve_gateway(url, home, config, direct=direct) as running:
            yield running
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def gateway(
    cluster: Cluster, template: str, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    with running_gateway(cluster, template, upstream, Path(tmp_path_factory.mktemp("gateway"))) as running:
        yield running


@dataclass(frozen=True)
class Caller:
    user_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def caller(gateway: RunningGateway) -> Caller:
    """A new user with an API token."""
    user_id = f"password_{uuid.uuid4().hex[:12]}"
    gateway.runtime.ledger.upsert_user_sync(user_id)
    token, _ = create_token(gateway.db, user_id, name="gateway test")
    return Caller(user_id, token)
