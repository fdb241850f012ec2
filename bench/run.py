"""Run the llmtally benchmarks: ``python bench/run.py`` (see docs/benchmarks.md).

Every comparison is a ratio measured in the same run, alternating the two sides, with medians over
repetitions. Absolute numbers are printed for information, never used as pass/fail. The exit status
is non-zero only when an invariant check inside a benchmark failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Report, machine_description, server

PARTS = ("ingest", "caller", "analytics", "app", "explorer", "gateway")


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(float(s)) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows takes numbers separated by commas (got {text!r})") from None
    if not sizes or sizes[0] < 1000:
        raise argparse.ArgumentTypeError("--rows: each size must be at least 1000")
    return sizes


def _levels(text: str) -> tuple[tuple[int, int], ...]:
    """``STREAMSxREQUESTS`` pairs, comma-separated (``1x100,50x1000``)."""
    try:
        pairs = (part.strip().split("x") for part in text.split(",") if part.strip())
        levels = tuple((int(a), int(b)) for a, b in pairs)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--gateway-levels takes STREAMSxREQUESTS,... (got {text!r})") from None
    if not levels or any(c < 1 or n < c for c, n in levels):
        raise argparse.ArgumentTypeError("--gateway-levels: each level needs 1 stream or more and as many requests")
    return levels


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", choices=[*PARTS, []], help="parts to run (default: all)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to benchmark (any database on it; the benchmarks create and drop their own)."
        " Default: an embedded PostgreSQL 18 in a temporary directory",
    )
    parser.add_argument(
        "--rows",
        type=_sizes,
        default=[1_000_000, 3_000_000],
        help="analytics: request_logs sizes, comma-separated (default 1000000,3000000; add 10000000 for the full run)",
    )
    parser.add_argument(
        "--explorer-rows",
        type=_sizes,
        default=[1_000_000],
        help="explorer: request_logs sizes, comma-separated (default 1000000)",
    )
    parser.add_argument("--full", action="store_true", help="more events and repetitions (ingest and caller)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: only checks that everything still runs")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="PATH",
        help="ingest: instead of the full benchmark, compare write throughput with the llmtally source tree at PATH"
        " (another checkout, e.g. of an earlier commit), side by side",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="ingest: the writer's batch size (LLMTALLY_BATCH_SIZE; default 500); 1 writes every event alone",
    )
    parser.add_argument("--events", type=int, help="ingest: events per writer and repetition (default 30000)")
    parser.add_argument(
        "--chunk-delay-ms",
        type=float,
        default=0.0,
        help="gateway: the upstream's pause after each streamed chunk (default 0: as fast as it can)",
    )
    parser.add_argument(
        "--gateway-levels",
        type=_levels,
        help="gateway: the levels to run, STREAMSxREQUESTS comma-separated (default 1x100,50x1000,500x2500)",
    )
    parser.add_argument(
        "--gateway-rounds", type=int, help="gateway: rounds of direct, Proxy, gateway per level (default 3)"
    )
    parser.add_argument(
        "--gateway-workers", type=int, help="gateway: processes of the llmtally gateway (--workers; default 1)"
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="PATH",
        help="gateway: also profile the gateway and the Proxy with this py-spy executable, one more run each",
    )
    args = parser.parse_args(argv)
    for name in ("batch_size", "events", "gateway_workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more")
    if args.py_spy is not None and not (args.py_spy.is_file() and os.access(args.py_spy, os.X_OK)):
        parser.error(f"--py-spy: {args.py_spy} is not an executable file (pip install py-spy, then its path)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    parts = args.parts or list(PARTS)
    report = Report()
    started = time.monotonic()
    report.line(f"llmtally benchmarks, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    report.line(f"machine: {machine_description()}")
    with server(args.database_url) as srv:
        report.line(f"server: {srv.description}")
        results: dict[str, object] = {"machine": machine_description(), "server": srv.description}
        if "ingest" in parts:
            from bench.ingest import IngestConfig
            from bench.ingest import run as run_ingest

            if args.smoke:
                cfg = IngestConfig(
                    reps=1,
                    ledger_events=600,
                    original_events=100,
                    users=50,
                    concurrency=(1, 2),
                    concurrent_events=400,
                    concurrent_reps=1,
                    memory_events=6_000,
                )
            elif args.full:
                cfg = IngestConfig(
                    reps=5,
                    ledger_events=100_000,
                    original_events=5_000,
                    concurrent_events=96_000,
                    concurrent_reps=3,
                    memory_events=105_000,
                )
            else:
                cfg = IngestConfig()
            if args.batch_size is not None:
                cfg.batch_size = args.batch_size
            if args.events is not None:
                cfg.ledger_events = args.events
            if args.against:
                from bench.against import run_against

                results["ingest_against"] = run_against(srv, report, cfg, args.against)
            else:
                results["ingest"] = run_ingest(srv, report, cfg)
        if "caller" in parts:
            from bench.caller import CallerConfig
            from bench.caller import run as run_caller

            if args.smoke:
                caller_cfg = CallerConfig(calls=200, reps=1)
            elif args.full:
                caller_cfg = CallerConfig(calls=40_000, reps=5, streamed_share=0.5)
            else:
                caller_cfg = CallerConfig()
            results["caller"] = run_caller(srv, report, caller_cfg)
        if "analytics" in parts:
            from bench.analytics import AnalyticsConfig
            from bench.analytics import run as run_analytics

            analytics_cfg = AnalyticsConfig.smoke() if args.smoke else AnalyticsConfig(sizes=args.rows)
            results["analytics"] = run_analytics(srv, report, analytics_cfg)
        if "app" in parts:
            from bench.app import AppConfig
            from bench.app import run as run_app

            results["app"] = run_app(srv, report, AppConfig.smoke() if args.smoke else AppConfig())
        if "explorer" in parts:
            from bench.explorer import ExplorerConfig
            from bench.explorer import run as run_explorer

            explorer_cfg = ExplorerConfig.smoke() if args.smoke else ExplorerConfig(sizes=args.explorer_rows)
            results["explorer"] = run_explorer(srv, report, explorer_cfg)
        if "gateway" in parts:
            from bench.gateway import GatewayConfig
            from bench.gateway import run as run_gateway

            gateway_cfg = GatewayConfig.smoke() if args.smoke else GatewayConfig()
            gateway_cfg.chunk_delay_ms = args.chunk_delay_ms
            gateway_cfg.py_spy = args.py_spy
            if args.gateway_levels:
                gateway_cfg.levels = args.gateway_levels
            if args.gateway_rounds:
                gateway_cfg.rounds = args.gateway_rounds
            if args.gateway_workers:
                gateway_cfg.workers = args.gateway_workers
            results["gateway"] = run_gateway(srv, report, gateway_cfg)
    elapsed = time.monotonic() - started
    report.line(f"\ntotal time {elapsed / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    if report.failed_checks:
        report.line(f"FAILED CHECKS: {', '.join(report.failed_checks)}")
        return 1
    report.line("all invariant checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
