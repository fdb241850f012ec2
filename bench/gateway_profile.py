"""Where a gateway request's time goes: ``llmtally gateway`` sampled by py-spy under the benchmark's load.

``bench/run.py gateway --py-spy PATH`` runs one more load (50 streams) against the gateway, then the
Proxy, after the rounds (both warm), each with ``py-spy record --pid`` attached to it. py-spy is not a
dependency: install it anywhere (``pip install py-spy`` in a virtualenv of its own) and name its
executable; it needs the right to trace the process (root, or ptrace allowed).

Every thread is sampled (the database threads of the key check and the reservation too) while it
holds the GIL (``--gil``): what runs Python on a core, not what waits for the database or the network.
Each sample is put in the first of these groups its stack contains, so the shares add up to 100 %: the
key check and the reservation, the ledger (LiteLLM's callback into llmtally, the writer), LiteLLM's
logging, LiteLLM's stream wrapper, the rest of LiteLLM (the router, the OpenAI client, httpx), the
gateway's own code (request parsing, the SSE relay), the HTTP server (uvicorn, h11, Starlette, FastAPI)
and anything else (the event loop itself, JSON, ...). For the Proxy nearly every stack runs through
``litellm/``, so its groups say little: its top functions are the figure to read.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Report

# (group, a pattern any frame of the stack matches), most specific first
GROUPS: tuple[tuple[str, str], ...] = (
    (
        "key check and reservation (the estimate, one statement)",
        r"\btoken_access \(|llmtally/admission\.py|llmtally/budgets\.py|\bestimate \(|\breserve \(",
    ),
    ("ledger: LiteLLM callback into llmtally, writer", r"llmtally/integrations/litellm/callback\.py|llmtally/ledger/"),
    ("direct call: the event and its price (llmtally + LiteLLM's cost)", r"direct_attempts\.py"),
    ("direct call: aiohttp to the upstream, SSE parsing", r"llmtally/app/gateway/direct\.py|aiohttp/"),
    ("LiteLLM logging (success handlers, cost)", r"litellm/litellm_core_utils/litellm_logging\.py"),
    ("LiteLLM stream wrapper (per chunk)", r"litellm/litellm_core_utils/streaming_handler\.py"),
    ("LiteLLM router, OpenAI client, httpx", r"litellm/|openai/|httpx/|httpcore/"),
    ("gateway SSE relay and request parsing", r"llmtally/app/gateway/|llmtally/budgeted_calls\.py"),
    ("HTTP server (uvicorn, h11, Starlette, FastAPI)", r"uvicorn/|h11/|starlette/|fastapi/|anyio/"),
    ("psycopg, other database work", r"psycopg"),
)
OTHER = "other (event loop, JSON, ...)"


def group_samples(raw: str) -> Counter[str]:
    """Samples per group from py-spy's raw (collapsed) output: ``frame;frame;... count`` a line."""
    patterns = [(name, re.compile(pattern)) for name, pattern in GROUPS]
    counts: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        for name, pattern in patterns:
            if pattern.search(stack):
                counts[name] += int(count)
                break
        else:
            counts[OTHER] += int(count)
    return counts


def top_functions(raw: str, count: int = 12) -> list[tuple[str, int]]:
    """The functions most often at the top of a sampled stack (self time), as ``name (file)``."""
    leaves: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, n = line.rpartition(" ")
        if stack and n.isdigit():
            leaf = stack.rsplit(";", 1)[-1]
            leaves[re.sub(r":\d+\)$", ")", re.sub(r"\(.*/(site-packages|src)/", "(", leaf))[:80]] += int(n)
    return leaves.most_common(count)


def profile(
    report: Report, py_spy: Path, work: Path, target: Any, load: Any, level: tuple[int, int], tally: Any
) -> dict[str, Any]:
    """One more run at ``level`` against ``target`` (already warm), its process sampled by py-spy."""
    from bench.gateway import _job

    concurrency, requests = level
    out = work / f"profile-{target.upstream_caller}.txt"
    command = [str(py_spy), "record", "--pid", str(target.pid), "--format", "raw"]
    command += ["--rate", "200", "--gil", "--nonblocking", "-o", str(out)]
    log = (work / f"py-spy-{target.upstream_caller}.log").open("wb")
    spy = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(1)  # attached
        tally.add(target, load.run(_job(target, concurrency, requests, concurrency)))
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on Ctrl-C
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        log.close()
    if not out.exists():
        report.line(f"py-spy wrote no profile: {(work / f'py-spy-{target.upstream_caller}.log').read_text()[-500:]}")
        return {}
    raw = out.read_text(errors="replace")
    counts = group_samples(raw)
    total = sum(counts.values()) or 1
    report.line(f"where the {target.name}'s CPU goes: py-spy, {concurrency} streams × {requests:,} requests")
    rows = [(name, f"{n:,}", f"{100 * n / total:.1f} %") for name, n in counts.most_common()]
    report.table(["group (first match in the stack)", "samples", "share"], rows)
    top = top_functions(raw)
    rows = [(f, f"{n:,}", f"{100 * n / total:.1f} %") for f, n in top]
    report.table(["function (self samples)", "samples", "share"], rows)
    return {"samples": dict(counts), "total": total, "top_functions": top}
