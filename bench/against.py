"""Write throughput of this source tree against another one (an earlier commit), side by side.

``python bench/run.py ingest --against PATH``: PATH is another llmtally checkout, for example
``git worktree add /tmp/before <commit>``. Each side gets a database migrated by its own code and a
writer process that imports its own ``src`` (the same workload, the same virtual environment). The
runs alternate, so both sides see the same machine; the ratio of the medians is what counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import ROOT, Report, Server, fmt_rate, median
from bench.ingest import IngestConfig, Writer, create_users

MIGRATE = (
    "import sys; from llmtally.db import Database; from llmtally.db.migrations import migrate;"
    " migrate(Database(sys.argv[1], max_size=1))"
)


def migrate_with(source: Path | None, url: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str((source or ROOT) / "src")
    subprocess.run([sys.executable, "-c", MIGRATE, url], env=env, check=True)


def run_against(srv: Server, report: Report, cfg: IngestConfig, source: Path) -> dict[str, Any]:
    from bench.workload import Workload

    source = source.resolve()
    if not (source / "src" / "llmtally").is_dir():
        raise SystemExit(f"--against: {source} is not an llmtally source tree (no src/llmtally)")
    report.section("Ingest against another source tree")
    report.line(
        f"this tree against {source}: {cfg.reps} repetitions alternating, {cfg.ledger_events:,} events each,"
        f" content={'/'.join(cfg.contents)}, {cfg.users:,} users, batch_size={cfg.batch_size}"
    )
    sides: dict[str, Path | None] = {"this tree": None, "other tree": source}
    urls = {}
    for name, tree in sides.items():
        urls[name] = srv.create_database("against", migrated=False)
        migrate_with(tree, urls[name])
        create_users(urls[name], Workload(users=cfg.users, seed=7).users, original=False)
    results: dict[str, Any] = {}
    rows = []
    for content in cfg.contents:
        writers = {
            name: Writer(urls[name], users=cfg.users, seed=51, batch_size=cfg.batch_size, content=content, source=tree)
            for name, tree in sides.items()
        }
        for name, w in writers.items():
            imported = Path(w.wait_ready()["source"]).resolve()
            expected = (sides[name] or ROOT) / "src"
            if imported != expected.resolve():
                raise SystemExit(f"{name}: the writer imported llmtally from {imported}, not {expected}")
        rates: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(cfg.reps):
            for name, writer in writers.items():
                writer.send(f"run {cfg.ledger_events}")
                result = writer.read()
                rates[name].append(result["events"] / (result["end"] - result["start"]))
        for w in writers.values():
            w.close()
        this, other = median(rates["this tree"]), median(rates["other tree"])
        results[content] = {"this": this, "other": other, "ratio": this / other}
        rows.append([content, fmt_rate(this), fmt_rate(other), f"{this / other:.2f}×"])
    report.table(["content", "this tree (events/s)", "other tree (events/s)", "this / other"], rows)
    for url in urls.values():
        srv.drop_database(url)
    return results
