"""The gateway benchmark's load generator, in its own process: streamed chat completions with httpx.

``python bench/gateway_load.py`` prints ``ready``, then reads one job a line on stdin (JSON: ``url``,
``headers``, ``body``, ``concurrency``, ``requests``, ``warmup``) and answers one JSON line each:

- ``warmup`` requests first, ``concurrency`` at a time, not timed (they open the pool's connections);
- then ``requests`` requests from ``concurrency`` workers, each sending its next request as soon as its
  last stream ended (a closed loop, as that many clients each waiting for their reply);
- ``latencies_s``: per request, from sending it to the last byte of its stream; ``elapsed_s``: from the
  first request to the last byte of the last; ``ok``: requests answered 200 whose stream ended with
  ``data: [DONE]``; ``sent``: every request, the warm-up included; ``errors``: a few of the others.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

DONE = b"data: [DONE]"


async def one(client: httpx.AsyncClient, job: dict[str, Any]) -> tuple[float, str | None]:
    """Seconds to the last byte, and None if the stream ended in [DONE] after a 200 (else what went wrong)."""
    started = time.perf_counter()
    try:
        async with client.stream("POST", job["url"], headers=job["headers"], json=job["body"]) as response:
            tail = b""
            async for data in response.aiter_bytes():
                tail = (tail + data)[-64:]
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                return elapsed, f"HTTP {response.status_code}: {tail.decode(errors='replace')}"
            if tail.rstrip().endswith(DONE):
                return elapsed, None
            return elapsed, f"the stream did not end with [DONE]: {tail.decode(errors='replace')!r}"
    except httpx.HTTPError as exc:
        elapsed = time.perf_counter() - started
        return elapsed, f"{type(exc).__name__} {exc!r} after {elapsed:.2f} s"


async def run(job: dict[str, Any]) -> dict[str, Any]:
    concurrency = int(job["concurrency"])
    # Idle connections are closed by the client after 1 s, before uvicorn's 5 s keep-alive timeout closes
    # them under a request being sent (httpx's default expiry is 5 s too: a race that fails the request).
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=1)
    timeout = httpx.Timeout(300, connect=60, pool=300)
    errors: list[str] = []
    failed = 0
    async with httpx.AsyncClient(limits=limits, timeout=timeout, trust_env=False) as client:
        left = int(job["warmup"])
        while left > 0:
            batch = min(left, concurrency)
            for _, error in await asyncio.gather(*(one(client, job) for _ in range(batch))):
                if error is not None:
                    failed += 1
                    errors.append(f"warm-up: {error}")
            left -= batch
        todo = iter(range(int(job["requests"])))
        latencies: list[float] = []

        async def worker() -> None:
            nonlocal failed
            for _ in todo:
                latency, error = await one(client, job)
                latencies.append(latency)
                if error is not None:
                    failed += 1
                    if len(errors) < 5:
                        errors.append(error)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    sent = int(job["warmup"]) + int(job["requests"])
    return {"latencies_s": latencies, "elapsed_s": elapsed, "sent": sent, "ok": sent - failed, "errors": errors[:5]}


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        result = asyncio.run(run(json.loads(line)))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
