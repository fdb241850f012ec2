"""Part 2: what the ledger costs the caller: ``litellm.acompletion`` throughput with and without it.

Real LiteLLM calls with ``mock_response`` (no network), 50 at a time on one event loop as an app
server would make them, streamed and not. The ledger is installed with ``Ledger.start()`` and removed
with ``Ledger.close()`` (LiteLLM de-duplicates callbacks and copies them into internal lists; close
takes it out of all of them). Each round runs both sides, in rotating order, for each mode; the
ratio is taken per round, then the median. A third side registers a callback that does nothing, to
separate what LiteLLM itself spends on having a callback from what the ledger adds. The callback's own
time per event (payload → typed event → queue) is measured inside the process around the ledger
callback's handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from bench.common import Report, Server, check_invariants, fmt_rate, median, percentile
from bench.workload import SYSTEM_PROMPT, Workload

CONCURRENCY = 50


def _noop_logger() -> Any:
    from litellm.integrations.custom_logger import CustomLogger

    class NoopLogger(CustomLogger):  # type: ignore[misc]
        """A callback that does nothing: what LiteLLM spends on having a callback at all."""

        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            return None

        async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            return None

    return NoopLogger()


@dataclass
class CallerConfig:
    calls: int = 20_000  # per side (with / without), streamed and not
    reps: int = 5
    users: int = 1_000
    streamed_share: float = 0.25  # LiteLLM's mock stream yields 3 characters a chunk: streamed calls are slow

    def per_round(self, stream: bool) -> int:
        share = self.streamed_share if stream else 1 - self.streamed_share
        return max(CONCURRENCY, round(self.calls * share / self.reps))


class CallbackClock:
    """Times the ledger callback's handler (event building + queueing) for every event."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def install(self, ledger: Any) -> None:
        callback = ledger._callback  # the registered LedgerCallback
        record = callback._record
        samples = self.samples

        def timed_record(*args: Any) -> None:
            start = time.perf_counter()
            record(*args)
            samples.append(time.perf_counter() - start)

        callback._record = timed_record


async def _calls(n: int, stream: bool, prompts: list[Any], replies: list[str], users: list[str], offset: int) -> float:
    import litellm

    async def one(i: int) -> None:
        k = offset + i
        kwargs: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": prompts[k % len(prompts)],
            "mock_response": replies[k % len(replies)],
            "user": users[k % len(users)],
            "metadata": {"user_profile_id": users[k % len(users)], "session_id": f"chat-{k // 20}"},
        }
        if stream:
            response = await litellm.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
            async for _ in response:
                pass
        else:
            await litellm.acompletion(**kwargs)

    start = time.perf_counter()
    for first in range(0, n, CONCURRENCY):
        await asyncio.gather(*(one(i) for i in range(first, min(n, first + CONCURRENCY))))
    return time.perf_counter() - start


async def _run(url: str, report: Report, cfg: CallerConfig) -> dict[str, Any]:
    import litellm

    from llmtally import Ledger, Settings

    litellm.suppress_debug_info = True
    workload = Workload(users=cfg.users, seed=5)
    prompts = [
        [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": workload._text(300 + 40 * i)}]
        for i in range(32)
    ]
    replies = [workload._text(600 + 60 * i) for i in range(32)]
    # Streamed replies are short (16 chunks of 3 characters, then usage): the fixed cost of the call
    # weighs more, so the ratio is the harder one.
    stream_replies = [workload._text(48) for _ in range(32)]
    modes = {"not streamed": False, "streamed": True}
    sides = ("without", "with", "no-op callback")
    rates: dict[str, dict[str, list[float]]] = {m: {side: [] for side in sides} for m in modes}
    clock = CallbackClock()
    made = 0
    recorded = 0
    # Warm-up: LiteLLM's first calls import and cache a lot.
    await _calls(2 * CONCURRENCY, False, prompts, replies, workload.users, 0)
    await _calls(2 * CONCURRENCY, True, prompts, stream_replies, workload.users, 0)
    for rep in range(cfg.reps):
        for mode, stream in modes.items():
            shift = (rep + (mode == "streamed")) % len(sides)
            order = sides[shift:] + sides[:shift]  # each side in each position across rounds
            per_round = cfg.per_round(stream)
            texts = stream_replies if stream else replies
            for side in order:
                if side == "with":
                    ledger = await Ledger(url, settings=Settings()).start()
                    clock.install(ledger)
                    seconds = await _calls(per_round, stream, prompts, texts, workload.users, made)
                    await ledger.close()
                    recorded += per_round
                elif side == "no-op callback":
                    # What LiteLLM itself spends on having any callback (logging payloads, its worker).
                    noop = _noop_logger()
                    litellm.callbacks.append(noop)
                    seconds = await _calls(per_round, stream, prompts, texts, workload.users, made)
                    litellm.logging_callback_manager.remove_callback_from_all_lists(noop)
                else:
                    seconds = await _calls(per_round, stream, prompts, texts, workload.users, made)
                made += per_round
                rates[mode][side].append(per_round / seconds)
        report.line(
            f"  round {rep + 1}: "
            + "; ".join(
                f"{m} with {fmt_rate(rates[m]['with'][-1])}/s, without {fmt_rate(rates[m]['without'][-1])}/s,"
                f" no-op callback {fmt_rate(rates[m]['no-op callback'][-1])}/s"
                for m in modes
            )
        )
    rows = []
    summary: dict[str, Any] = {}
    for mode in modes:
        ratio = median([w / wo for w, wo in zip(rates[mode]["with"], rates[mode]["without"], strict=True)])
        noop_ratio = median(
            [n / wo for n, wo in zip(rates[mode]["no-op callback"], rates[mode]["without"], strict=True)]
        )
        summary[mode] = {
            "with_per_s": median(rates[mode]["with"]),
            "without_per_s": median(rates[mode]["without"]),
            "noop_per_s": median(rates[mode]["no-op callback"]),
            "ratio": ratio,
            "noop_ratio": noop_ratio,
        }
        rows.append(
            [
                mode,
                f"{cfg.per_round(modes[mode]) * cfg.reps:,}",
                fmt_rate(median(rates[mode]["with"])),
                fmt_rate(median(rates[mode]["without"])),
                f"{ratio:.3f}",
                fmt_rate(median(rates[mode]["no-op callback"])),
                f"{noop_ratio:.3f}",
            ]
        )
    report.table(
        [
            "calls",
            "calls per side",
            "with ledger /s",
            "without /s",
            "with/without (≥ 0.95)",
            "no-op callback /s",
            "no-op/without",
        ],
        rows,
    )
    samples = clock.samples
    summary["callback_p50_us"] = percentile(samples, 50) * 1e6
    summary["callback_p99_us"] = percentile(samples, 99) * 1e6
    report.line(
        f"callback time per event ({len(samples):,} events): p50 {summary['callback_p50_us']:.0f} µs,"
        f" p99 {summary['callback_p99_us']:.0f} µs"
    )
    summary["recorded"] = recorded
    return summary


def run(srv: Server, report: Report, cfg: CallerConfig) -> dict[str, Any]:
    import psycopg

    report.section("2. Caller overhead")
    report.line(
        f"{cfg.reps} rounds; per round {cfg.per_round(False):,} non-streamed and {cfg.per_round(True):,} streamed"
        f" calls with the ledger, as many without and as many with a no-op callback, in rotating order;"
        f" {CONCURRENCY} concurrent calls"
    )
    url = srv.create_database("caller")
    summary = asyncio.run(_run(url, report, cfg))
    with psycopg.connect(url) as conn:
        rows = int(conn.execute("select count(*) from public.request_logs").fetchone()[0])  # type: ignore[index]
    report.line(f"calls made with the ledger installed: {summary['recorded']:,}; rows recorded: {rows:,}")
    if rows != summary["recorded"]:
        report.failed_checks.append("caller: every call with the ledger recorded once, none without")
    report.check("caller invariants", check_invariants(url))
    with contextlib.suppress(Exception):
        srv.drop_database(url)
    return summary
