"""A Node program with the openai npm package (pinned in tests/gateway/node) streams a chat completion from
the gateway with an ``lt_`` key; the ledger row is the upstream's bill, for the key's user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.gateway.conftest import Caller
from tests.support.gateway import RunningGateway
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, REPLY, Upstream

NODE_DIR = Path(__file__).parent / "node"


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "openai").is_dir():
        if os.environ.get("CI"):
            pytest.fail("node and tests/gateway/node/node_modules are required in CI (.ci/run runs npm ci)")
        pytest.skip("the openai npm package is not installed: run `npm ci` in tests/gateway/node")
    return node


def test_the_openai_npm_package_streams_a_chat_completion_recorded_as_billed(
    gateway: RunningGateway, caller: Caller, upstream: Upstream
) -> None:
    node = _node()
    env = {**os.environ, "LLMTALLY_TEST_KEY": caller.token}
    done = subprocess.run(
        [node, "stream_chat.mjs", gateway.base_url, "gpt-4o-mini"],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["text"] == REPLY and result["chunks"] > 1  # streamed, not one reply
    assert result["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert result["usage"]["completion_tokens"] == COMPLETION_TOKENS
    [bill] = [b for b in upstream.billed if b.id == result["id"]]
    assert bill.stream
    [row] = gateway.wait_for_rows(caller.user_id, 1)
    assert (row["status"], row["user_profile_id"], row["model"], row["stream"]) == (
        "success",
        caller.user_id,
        "gpt-4o-mini",
        True,
    )
    assert (row["prompt_tokens"], row["completion_tokens"]) == (bill.prompt_tokens, bill.completion_tokens)
    expected = bill.prompt_tokens * 0.15e-6 + bill.completion_tokens * 0.6e-6  # gpt-4o-mini's price
    assert float(row["total_cost"]) == pytest.approx(expected, rel=1e-9)
    assert row["usage_source"] == "provider" and row["metadata"]["api_token"] == caller.token[:10]
    assert gateway.reservations(caller.user_id) == 0
