"""``llmtally gateway``, the real program: it serves /v1 alone (curl with an API token); a bad config is one line."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from llmtally.api_tokens import create_token
from llmtally.db import Database
from llmtally.db.queries import query
from tests.support.cli import assert_one_line_error, llmtally
from tests.support.server import ROOT, free_port, wait_until_answering
from tests.support.upstream import Upstream


def service_token(db_url: str, user_id: str, name: str) -> str:
    """A new user's API token."""
    with Database(db_url) as db:
        db.execute(query("upsert_user"), {"user_id": user_id, "email": None, "full_name": None, "provider": None})
        token, _ = create_token(db, user_id, name=name)
    return token


@contextmanager
def gateway_command(db_url: str, home: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``llmtally gateway ARGS`` on a free port, once it answers: (process, URL, log file); terminated after."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMTALLY_") and k != "DATABASE_URL"}
    env.update({"DATABASE_URL": db_url, "LLMTALLY_HOME": str(home), "LLMTALLY_FLUSH_INTERVAL_MS": "20"})
    env["NO_PROXY"] = "127.0.0.1"
    log = home / "gateway.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmtally", "gateway", "--port", str(port), *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, f"{url}/healthz", log.read_text, "llmtally gateway", timeout=90)
        yield process, url, log
    finally:
        process.terminate()
        process.wait(timeout=60)


def curl_post(url: str, auth: str, body: dict[str, object]) -> str:
    command = ["curl", "-sS", url, "-H", auth, "-H", "Content-Type: application/json", "-d", json.dumps(body)]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_a_bad_config_file_is_one_line_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "gateway.yaml"
    bad.write_text("model_list:\n  - model_name: gpt-4o-mini\n    litellm_params: {api_key: k}\n")
    result = llmtally("gateway", "--port", str(free_port()), "--config", str(bad), home=tmp_path)  # in process
    assert_one_line_error(result, f"{bad}: model_list[0] (gpt-4o-mini) needs litellm_params.model")


def test_the_gateway_command_serves_v1_alone_and_records_every_call(db_url: str, tmp_path: Path) -> None:
    token = service_token(db_url, "svc_reports", "reports job")
    with gateway_command(db_url, tmp_path) as (_, url, log):
        auth = f"Authorization: Bearer {token}"
        models = subprocess.run(["curl", "-sS", f"{url}/v1/models", "-H", auth], capture_output=True, text=True)
        assert [m["id"] for m in json.loads(models.stdout)["data"]] == ["llmtally/demo"]
        body = json.dumps({"model": "llmtally/demo", "messages": [{"role": "user", "content": "Hello"}]})
        done = subprocess.run(
            [
                "curl",
                "-sS",
                f"{url}/v1/chat/completions",
                "-H",
                auth,
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
            ],
            capture_output=True,
            text=True,
        )
        reply = json.loads(done.stdout)
        assert "offline demo model" in reply["choices"][0]["message"]["content"]
        # The curl examples of docs/gateway.md for the text completions and the Responses API
        text = json.loads(curl_post(f"{url}/v1/completions", auth, {"model": "llmtally/demo", "prompt": "Hello"}))
        assert "offline demo model" in text["choices"][0]["text"]
        answer = json.loads(curl_post(f"{url}/v1/responses", auth, {"model": "llmtally/demo", "input": "Hello"}))
        assert "offline demo model" in answer["output"][0]["content"][0]["text"]
        chat = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/"], capture_output=True)
        assert chat.stdout == b"404"  # no chat here
        with Database(db_url) as db:
            deadline = time.monotonic() + 10
            while len(rows := db.fetch_all("select * from request_logs order by created_at")) < 3 and (
                time.monotonic() < deadline
            ):
                time.sleep(0.05)
        assert len(rows) == 3
        for row, usage in zip(rows, (reply["usage"], text["usage"], answer["usage"]), strict=True):
            assert (row["user_profile_id"], row["model"], row["status"]) == ("svc_reports", "demo", "success")
            assert row["completion_tokens"] == usage.get("completion_tokens", usage.get("output_tokens"))
    output = log.read_text()
    assert f"OpenAI-compatible API at {url}/v1 (router config: built-in)" in output
    assert "Traceback" not in output


def test_workers_share_the_port_record_every_call_and_drain_when_stopped(db_url: str, tmp_path: Path) -> None:
    """``--workers 2``: two processes answer on one port, every call is recorded once, and stopping the
    command stops both after they have written what they recorded."""
    token = service_token(db_url, "svc_batch", "batch job")
    body = {"model": "llmtally/demo", "messages": [{"role": "user", "content": "Hello"}]}

    def call(_: int) -> int:
        with httpx.Client(timeout=30, trust_env=False) as client:  # a connection of its own
            return client.post(
                f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}
            ).status_code

    with gateway_command(db_url, tmp_path, "--workers", "2") as (process, url, log):
        workers = [w for w in psutil.Process(process.pid).children() if "spawn" in " ".join(w.cmdline())]
        assert len(workers) == 2, [w.cmdline() for w in psutil.Process(process.pid).children()]
        deadline = time.monotonic() + 90
        while not all(w.num_threads() >= 3 for w in workers):  # started: its ledger writer and pools run
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        cpu_before = [sum(w.cpu_times()[:2]) for w in workers]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert set(pool.map(call, range(80))) == {200}
        used = [sum(w.cpu_times()[:2]) - before for w, before in zip(workers, cpu_before, strict=True)]
        assert all(seconds > 0.05 for seconds in used), used  # both processes answered calls
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    with Database(db_url) as db:
        rows = db.fetch_all("select litellm_call_id, status from request_logs where user_profile_id = 'svc_batch'")
    assert len(rows) == 80 and {r["status"] for r in rows} == {"success"}
    assert len({r["litellm_call_id"] for r in rows}) == 80
    output = log.read_text()
    assert "2 worker processes" in output and "Traceback" not in output


def test_text_completions_share_connections_to_the_upstream(db_url: str, tmp_path: Path) -> None:
    """LiteLLM would make a client (and a connection) for each non-streamed text completion and leave it
    open: the command gives the process one client, so the calls keep their connections alive."""
    token = service_token(db_url, "svc_legacy", "legacy job")
    with Upstream() as upstream:
        config = tmp_path / "gateway.yaml"
        config.write_text(
            "model_list:\n  - model_name: instruct\n    litellm_params:\n"
            "      model: text-completion-openai/gpt-3.5-turbo-instruct\n"
            f"      api_base: '{upstream.api_base()}'\n      api_key: k\n"
        )
        with gateway_command(db_url, tmp_path, "--config", str(config)) as (_, url, log):
            auth = f"Authorization: Bearer {token}"
            for _ in range(6):
                text = json.loads(curl_post(f"{url}/v1/completions", auth, {"model": "instruct", "prompt": "Hi"}))
                assert text["object"] == "text_completion", text
            assert len(upstream.connections_of("ok")) <= 2, upstream.peers
    output = log.read_text()
    assert "Unclosed" not in output and "Traceback" not in output
