"""The benchmarks still run: each part at a tiny size prints its figures and its invariant checks pass.

Timings are not checked here (they belong to the benchmarks themselves, see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "ingest": [
        "ledger/original",
        "ledger/ceiling",
        "ledger/decoding in Python",
        "peak RSS writing",
        "writer processes",
    ],
    "caller": ["with/without", "callback time per event"],
    "analytics": ["user_monthly_usage — heaviest", "cost by model by day, 90 days", "answers agree"],
    "explorer": ["heaviest user, own page (RLS)", "drill-down (one call and its attempts)", "latency percentiles"],
    "gateway": [
        "direct (upstream)",
        "LiteLLM Proxy",
        "llmtally gateway",
        "gateway/proxy throughput",
        "every request to the llmtally gateway answered 200 with [DONE]",
        "rows in request_logs for the gateway's key",
    ],
    "app": ["cold (new LLMTALLY_HOME)", "warm (initialised)", "replies/s", "rows in request_logs for these users"],
}


@pytest.mark.parametrize("part", sorted(EXPECTED))
def test_benchmark_runs_at_a_tiny_size(part: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    args = [sys.executable, str(ROOT / "bench" / "run.py"), part, "--smoke"]
    if os.environ.get("TEST_DATABASE_URL") and part == "analytics":
        args += ["--database-url", os.environ["TEST_DATABASE_URL"]]  # the generator on the second server too
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    for figure in EXPECTED[part]:
        assert figure in out, f"{figure!r} missing from the output:\n{out[-4000:]}"
    assert "INVARIANTS OK" in out and "INVARIANTS FAILED" not in out, out[-4000:]
    assert "all invariant checks passed" in out
