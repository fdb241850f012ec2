"""Part 7: the gateway side by side with a direct upstream and the LiteLLM Proxy, on the same upstream.

Four targets, each its own process, all pointed at one local upstream (``bench/gateway_upstream.py``):
the upstream itself (direct), the LiteLLM Proxy (no database, no callback: its lightest setup),
``llmtally gateway`` (every call authenticated by an ``lt_`` key, reserved against a budget, recorded in
the ledger; its chat completions sent to the upstream directly) and the same gateway with every call
through LiteLLM's Router (``LLMTALLY_GATEWAY_DIRECT=false``). A load generator in its own process sends
streamed chat completions (``stream: true``, asking for the usage chunk) from N concurrent clients, each
sending its next request when its stream has ended; the targets take turns, round after round (direct,
proxy, gateway, Router-only gateway, direct, ...), so the noise of a shared machine falls on all of them.

Per run: latency of every request (sending it to the last byte of its stream), p50 and p99, and
throughput (requests completed per second). Added latency is a target's p50 (p99) minus the direct
p50 (p99) of the same round. Every figure is the median over rounds. Afterwards every gateway request
must have been answered 200 ending with ``[DONE]``, the upstream must have been asked once per request,
and the ledger must hold exactly one row per gateway request with the upstream's tokens, no reservation
left, and counters equal to the rows.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg
from bench.common import Report, Server, check_invariants, fmt_ms, fmt_rate, fmt_ratio, median, percentile
from bench.gateway_targets import (
    MODEL,
    PROXY_KEY,
    USER,
    Process,
    load_generator,
    make_key,
    start_gateway,
    start_proxy,
    start_upstream,
    upstream_stats,
    wait_for,
    wait_ready,
    write_gateway_config,
)
from bench.gateway_upstream import COMPLETION_TOKENS, PROMPT_TOKENS

DIRECT, PROXY, GATEWAY = "direct (upstream)", "LiteLLM Proxy", "llmtally gateway"
ROUTED = "gateway, Router only"  # LLMTALLY_GATEWAY_DIRECT=false: every call through LiteLLM's Router
ADDED_P50_TARGET_S = 0.002


@dataclass
class GatewayConfig:
    # (concurrent streams, requests timed per run); 1 stream shows the cost of a request with no queue
    levels: tuple[tuple[int, int], ...] = ((1, 100), (50, 1000), (500, 2500))
    rounds: int = 3
    chunk_delay_ms: float = 0.0
    first_calls: int = 20  # per target before the rounds, not timed (LiteLLM loads parts on first use)
    py_spy: Path | None = None  # profile the gateway under this py-spy for one more run, if given
    profile_level: tuple[int, int] = (50, 1000)
    workers: int = 1  # processes of the llmtally gateway target (llmtally gateway --workers)

    @classmethod
    def smoke(cls) -> GatewayConfig:
        return cls(levels=((4, 20), (16, 40)), rounds=1, first_calls=8, profile_level=(16, 40))


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    headers: dict[str, str]
    upstream_caller: str  # the first segment of the upstream path it calls
    pid: int  # the process whose CPU time a request costs (the upstream's for the direct target)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        times = p.cpu_times()
        total += times.user + times.system
    return total


@dataclass
class Tally:
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ok: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, target: Target, result: dict[str, Any]) -> None:
        self.sent[target.name] += int(result["sent"])
        self.ok[target.name] += int(result["ok"])
        self.errors[target.name].extend(result["errors"][: 5 - len(self.errors[target.name])])


def request_body() -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say something short."}],
        "max_tokens": 32,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def _job(target: Target, concurrency: int, requests: int, warmup: int) -> dict[str, Any]:
    return {
        "url": target.url,
        "headers": target.headers,
        "body": request_body(),
        "concurrency": concurrency,
        "requests": requests,
        "warmup": warmup,
    }


def _ledger(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "select count(*), count(distinct litellm_call_id),"
            " count(*) filter (where status = 'success' and prompt_tokens = %s and completion_tokens = %s),"
            " (select count(*) from public.budget_reservations where user_id = %s)"
            " from public.request_logs where user_profile_id = %s",
            (PROMPT_TOKENS, COMPLETION_TOKENS, USER, USER),
        ).fetchone()
    assert row is not None
    names = ("rows", "distinct", "billed_as_upstream", "reservations")
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def measure(report: Report, cfg: GatewayConfig, targets: list[Target], load: Any, tally: Tally) -> dict[str, Any]:
    for target in targets:  # first calls load LiteLLM's lazy parts: not timed
        tally.add(target, load.run(_job(target, 4, 0, cfg.first_calls)))
    rows: list[tuple[Any, ...]] = []
    results: dict[str, Any] = {}
    for concurrency, requests in cfg.levels:
        p50: dict[str, list[float]] = defaultdict(list)
        p99: dict[str, list[float]] = defaultdict(list)
        rate: dict[str, list[float]] = defaultdict(list)
        added50: dict[str, list[float]] = defaultdict(list)
        added99: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        ratio: list[float] = []
        for round_ in range(cfg.rounds):
            measured: dict[str, tuple[float, float, float]] = {}
            for target in targets:
                before = cpu_seconds(target.pid)
                result = load.run(_job(target, concurrency, requests, concurrency))
                cpu[target.name].append((cpu_seconds(target.pid) - before) / result["sent"])
                tally.add(target, result)
                latencies = result["latencies_s"]
                measured[target.name] = (
                    percentile(latencies, 50),
                    percentile(latencies, 99),
                    len(latencies) / result["elapsed_s"],
                )
                print(  # progress, apart from the figures
                    f"  {concurrency} streams, round {round_ + 1}/{cfg.rounds}, {target.name}:"
                    f" {measured[target.name][2]:,.0f} requests/s, p50 {fmt_ms(measured[target.name][0])} ms",
                    file=sys.stderr,
                    flush=True,
                )
            for name, (q50, q99, r) in measured.items():
                p50[name].append(q50)
                p99[name].append(q99)
                rate[name].append(r)
                added50[name].append(q50 - measured[DIRECT][0])
                added99[name].append(q99 - measured[DIRECT][1])
            ratio.append(measured[GATEWAY][2] / measured[PROXY][2])
        level: dict[str, Any] = {"requests_per_run": requests, "rounds": cfg.rounds}
        for target in targets:
            name = target.name
            direct = name == DIRECT
            rows.append(
                (
                    concurrency,
                    name,
                    fmt_rate(median(rate[name])),
                    fmt_ms(median(p50[name])),
                    fmt_ms(median(p99[name])),
                    "-" if direct else fmt_ms(median(added50[name])),
                    "-" if direct else fmt_ms(median(added99[name])),
                    fmt_ms(median(cpu[name])),
                )
            )
            level[name] = {
                "requests_per_s": median(rate[name]),
                "p50_s": median(p50[name]),
                "p99_s": median(p99[name]),
                "added_p50_s": median(added50[name]),
                "added_p99_s": median(added99[name]),
                "cpu_s_per_request": median(cpu[name]),
                "rounds": {"requests_per_s": rate[name], "p50_s": p50[name], "p99_s": p99[name]},
            }
        level["gateway_over_proxy_throughput"] = median(ratio)
        results[f"streams_{concurrency}"] = level
    headers = ["streams", "target", "requests/s", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "CPU ms/request"]
    report.table(headers, rows)
    report.line("CPU ms/request: the target process's CPU time (for the direct target, the upstream's) per request")
    for concurrency, _ in cfg.levels:
        level = results[f"streams_{concurrency}"]
        level["direct_over_routed_throughput"] = level[GATEWAY]["requests_per_s"] / level[ROUTED]["requests_per_s"]
        report.line(
            f"{concurrency} streams: direct calls / Router only: throughput"
            f" {fmt_ratio(level['direct_over_routed_throughput'])}, CPU per request"
            f" {fmt_ratio(level[GATEWAY]['cpu_s_per_request'] / level[ROUTED]['cpu_s_per_request'])},"
            f" added p50 {fmt_ms(level[GATEWAY]['added_p50_s'])} vs {fmt_ms(level[ROUTED]['added_p50_s'])} ms"
        )
        ratio_text = fmt_ratio(level["gateway_over_proxy_throughput"])
        added = level[GATEWAY]["added_p50_s"]
        proxy_added = level[PROXY]["added_p50_s"]
        report.line(
            f"{concurrency} streams: gateway/proxy throughput {ratio_text}"
            f" ({'met' if level['gateway_over_proxy_throughput'] >= 1 else 'not met'}: target ≥ 1×);"
            f" added p50 gateway {fmt_ms(added)} ms, proxy {fmt_ms(proxy_added)} ms"
            f" ({'met' if added <= ADDED_P50_TARGET_S else 'not met'}: target ≤ 2 ms)"
        )
    return results


def _check(report: Report, name: str, ok: bool, detail: str) -> None:
    report.line(f"{'check passed' if ok else 'CHECK FAILED'}: {name}: {detail}")
    if not ok:
        report.failed_checks.append(name)


def checks(report: Report, url: str, upstream: str, targets: list[Target], tally: Tally) -> dict[str, Any]:
    for target in targets:
        errors = "; ".join(tally.errors[target.name][:3])
        _check(
            report,
            f"every request to the {target.name} answered 200 with [DONE]",
            tally.ok[target.name] == tally.sent[target.name],
            f"{tally.ok[target.name]:,} of {tally.sent[target.name]:,}" + (f" (e.g. {errors})" if errors else ""),
        )
    asked = upstream_stats(upstream)
    for target in targets:
        _check(
            report,
            f"the upstream asked once per request to the {target.name}",
            asked.get(target.upstream_caller, 0) == tally.sent[target.name],
            f"{asked.get(target.upstream_caller, 0):,} upstream calls for {tally.sent[target.name]:,} requests",
        )
    expected = tally.sent[GATEWAY] + tally.sent[ROUTED]
    wait_for(lambda: _ledger(url)["rows"] >= expected, timeout=60)
    return {"upstream_calls": asked, "ledger": _ledger(url), "expected_rows": expected}


def ledger_checks(report: Report, url: str, expected: int) -> dict[str, int]:
    ledger = _ledger(url)
    report.line(
        f"rows in request_logs for the gateway's key: {ledger['rows']:,} for {expected:,} requests"
        f" ({ledger['distinct']:,} distinct calls, {ledger['billed_as_upstream']:,} with the upstream's"
        f" {PROMPT_TOKENS}/{COMPLETION_TOKENS} tokens); reservations left: {ledger['reservations']}"
    )
    _check(
        report,
        "one ledger row per gateway request, with the upstream's tokens",
        ledger["rows"] == ledger["distinct"] == ledger["billed_as_upstream"] == expected,
        f"{ledger['rows']:,} rows for {expected:,} requests",
    )
    _check(report, "every reservation settled", ledger["reservations"] == 0, f"{ledger['reservations']} left")
    report.check("gateway ledger invariants", check_invariants(url))
    return ledger


def run(srv: Server, report: Report, cfg: GatewayConfig) -> dict[str, Any]:
    report.section("7. Gateway: direct upstream, LiteLLM Proxy, llmtally gateway")
    levels = ", ".join(f"{c} streams × {n:,} requests" for c, n in cfg.levels)
    report.line(
        f"streamed chat completions, {levels} a run, {cfg.rounds} round(s) of direct → proxy → gateway →"
        " gateway with every call through LiteLLM's Router;"
        f" upstream chunk delay {cfg.chunk_delay_ms:g} ms; every target, the upstream and the load generator"
        " in their own processes on the same cores"
        + (f"; the llmtally gateway with {cfg.workers} worker processes" if cfg.workers > 1 else "")
    )
    url = srv.create_database("gateway")
    work = Path(tempfile.mkdtemp(prefix="llmtally-bench-gateway-"))
    running: list[Process] = []
    results: dict[str, Any] = {}
    try:
        upstream, upstream_url = start_upstream(work, cfg.chunk_delay_ms)
        running.append(upstream)
        proxy, proxy_url = start_proxy(work, upstream_url)
        running.append(proxy)
        config = write_gateway_config(work, upstream_url)
        routed_config = write_gateway_config(work, upstream_url, "routed")
        token = make_key(url, work / "home")  # while the proxy loads
        gateway, gateway_url = start_gateway(work, config, url, workers=cfg.workers)
        running.append(gateway)
        routed, routed_url = start_gateway(work, routed_config, url, direct=False)
        running.append(routed)
        wait_ready(proxy, f"{proxy_url}/health/liveliness")
        wait_ready(gateway, f"{gateway_url}/healthz")
        wait_ready(routed, f"{routed_url}/healthz")
        targets = [
            Target(DIRECT, f"{upstream_url}/direct/v1/chat/completions", {}, "direct", upstream.process.pid),
            Target(
                PROXY,
                f"{proxy_url}/v1/chat/completions",
                {"Authorization": f"Bearer {PROXY_KEY}"},
                "proxy",
                proxy.process.pid,
            ),
            Target(
                GATEWAY,
                f"{gateway_url}/v1/chat/completions",
                {"Authorization": f"Bearer {token}"},
                "gateway",
                gateway.process.pid,
            ),
            Target(
                ROUTED,
                f"{routed_url}/v1/chat/completions",
                {"Authorization": f"Bearer {token}"},
                "routed",
                routed.process.pid,
            ),
        ]
        tally = Tally()
        with load_generator(work) as load:
            results["levels"] = measure(report, cfg, targets, load, tally)
            if cfg.py_spy is not None:
                from bench.gateway_profile import profile

                level = cfg.profile_level
                results["profile"] = {
                    t.name: profile(report, cfg.py_spy, work, t, load, level, tally) for t in (targets[2], targets[1])
                }
            results["checks"] = checks(report, url, upstream_url, targets, tally)
            for process in (gateway, routed):  # SIGTERM: the ledger drains what it still holds
                process.stop()
                running.remove(process)
            results["ledger"] = ledger_checks(report, url, tally.sent[GATEWAY] + tally.sent[ROUTED])
    finally:
        for process in reversed(running):
            process.stop()
        srv.drop_database(url)
        shutil.rmtree(work, ignore_errors=True)
    return results
