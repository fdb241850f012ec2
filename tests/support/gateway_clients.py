"""One client process for the team-key budget proof: COUNT concurrent requests to the gateway with one key.

    python -m tests.support.gateway_clients URL TOKEN COUNT PROCESS

Prints one JSON line: how many were answered (``ok``), refused by the budget (``budget``), or anything else
(``other``, with up to five of those answers). Every other request streams; every request asks the
``counted`` model for at most ``MAX_TOKENS`` tokens with the same prompt, so each reserves what it is billed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

import httpx

MAX_TOKENS = 19
MESSAGES = [{"role": "user", "content": "How much does one call of a team cost?"}]


async def one(client: httpx.AsyncClient, url: str, token: str, i: int, seen: Counter[str], others: list[str]) -> None:
    body = {"model": "counted", "messages": MESSAGES, "max_tokens": MAX_TOKENS, "stream": i % 2 == 1,
            "user": f"member-{i % 3}"}  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as response:
        text = (await response.aread()).decode()
    if response.status_code == 200 and ("[DONE]" in text or '"chat.completion"' in text):
        seen["ok"] += 1
    elif response.status_code == 429 and '"budget_exceeded"' in text:
        seen["budget"] += 1
    else:
        seen["other"] += 1
        others.append(f"{response.status_code} {text[:300]}")


async def main(url: str, token: str, count: int) -> None:
    seen: Counter[str] = Counter()
    others: list[str] = []
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        await asyncio.gather(*(one(client, url, token, i, seen, others) for i in range(count)))
    print(json.dumps({"ok": seen["ok"], "budget": seen["budget"], "other": seen["other"], "others": others[:5]}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
