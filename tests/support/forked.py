"""Run a worker's ``run(argv)`` in several OS processes that import it (and so LiteLLM) only once.

The concurrency and budget tests need several app processes writing at once. Each used to be a new
interpreter importing LiteLLM (about 3.5 s of CPU apiece, most of those tests' time on two cores). Here one
launcher interpreter imports the worker module, then forks one child per job before any thread, event
loop or connection exists: every child is still its own OS process with its own ledger, connection pool
and event loop, as a preloading application server's workers are.

    results = run_forked(WORKER, [[url, "0", "200"], [url, "1", "200"]])

Each result has the child's exit code and what it printed. As a script the launcher reads the jobs as
JSON from stdin and prints the results as JSON (``python tests/support/forked.py WORKER``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def run_forked(worker: Path, jobs: list[list[str]], *, timeout: float = 600) -> list[Finished]:
    """Run ``worker``'s ``run(job)`` once per job, each in a process of its own, all at once."""
    launcher = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(worker)],
        input=json.dumps(jobs),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert launcher.returncode == 0, launcher.stderr[-3000:]
    return [Finished(**r) for r in json.loads(launcher.stdout)]


def _load(worker: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"_forked_{worker.stem}", worker)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(module: Any, job: list[str], out: int, err: int) -> None:
    os.dup2(out, 1)
    os.dup2(err, 2)
    code = 0
    try:
        module.run(job)
    except BaseException:  # reported to the test through stderr and the exit code
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def launch(worker: Path, jobs: list[list[str]]) -> list[dict[str, Any]]:
    module = _load(worker)
    assert threading.active_count() == 1, "the worker module started a thread on import: forking is not safe"
    sys.stdout.flush()
    sys.stderr.flush()
    results = []
    with contextlib.ExitStack() as files:
        children = []
        for job in jobs:
            out, err = (files.enter_context(tempfile.TemporaryFile()) for _ in range(2))
            pid = os.fork()
            if pid == 0:
                _child(module, job, out.fileno(), err.fileno())
            children.append((pid, out, err))
        for pid, out, err in children:
            _, status = os.waitpid(pid, 0)
            texts = []
            for f in (out, err):
                f.seek(0)
                texts.append(f.read().decode("utf-8", errors="replace"))
            results.append({"returncode": os.waitstatus_to_exitcode(status), "stdout": texts[0], "stderr": texts[1]})
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    print(json.dumps(launch(Path(sys.argv[1]), json.loads(sys.stdin.read()))))
