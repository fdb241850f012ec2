#!/usr/bin/env python3
"""Build the wheel and sdist, install the wheel into fresh virtual environments, smoke-test each.

    python3 scripts/package_smoke.py [--keep] [ENV ...]

Environments (all by default):

    core    `pip install llmtally`: imports, `llmtally --help`, `migrate`, a recorded LiteLLM call on the
            embedded database, and `llmtally up` naming the app extra in one line; no Chainlit, FastAPI,
            uvicorn or Starlette installed; and an app pinned to an old FastAPI (0.115.0) still resolves
    proxy   the core next to the LiteLLM Proxy's runtime dependencies (the `proxy` dependency group):
            `import litellm.proxy.proxy_server` works there (what `litellm --config` loads)
    app     `llmtally[app]`: the core checks, then `llmtally up` serves /healthz, the Chainlit login page,
            /metrics and the JSON API with a token
    lowest  `llmtally[app]` resolved with `--resolution lowest-direct`: every declared lower bound of
            pyproject.toml (FastAPI older than the lock's among them), with the app's checks

core, proxy and app install the versions of uv.lock (exported with their hashes); lowest resolves from
the package index. Installs use uv's cache, so a second run needs no download. The same file runs
inside each environment (`--inside ENV`) to do the checks with that environment's Python; it imports
only the standard library at the top so that it can.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import email.parser
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVS = ("core", "proxy", "app", "lowest")
APP_MODULES = ("chainlit", "fastapi", "uvicorn", "starlette")
USER = "smoke_user"
MISSING_APP = "Error: llmtally up needs the app extra: pip install 'llmtally[app]'"


class SmokeFailure(Exception):
    pass


def check(condition: object, message: str) -> None:
    if not condition:
        raise SmokeFailure(message)


def run(
    command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


def ok(command: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300) -> str:
    result = run(command, env=env, cwd=cwd, timeout=timeout)
    if result.returncode != 0:
        raise SmokeFailure(f"`{' '.join(command)}` exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result.stdout


# -- inside an environment ---------------------------------------------------------------------------


def llmtally_cli() -> str:
    return str(Path(sys.executable).parent / "llmtally")


def inside_imports(env: str) -> None:
    import importlib.util

    import llmtally
    from llmtally.cli.app import load_commands

    where = Path(llmtally.__file__).resolve()
    check(ROOT not in where.parents, f"llmtally was imported from the source tree ({where}), not the wheel")
    load_commands()
    eager = sorted(m for m in APP_MODULES if m in sys.modules)
    check(not eager, f"`import llmtally` and the CLI import {eager}: they belong behind the app extra")
    # The proxy brings FastAPI, Starlette and uvicorn itself, never Chainlit.
    expected = {"core": set(), "proxy": set(APP_MODULES) - {"chainlit"}}.get(env, set(APP_MODULES))
    installed = {m for m in APP_MODULES if importlib.util.find_spec(m) is not None}
    check(installed == expected, f"{env} has {sorted(installed)} installed, expected {sorted(expected)}")
    ok([llmtally_cli(), "--help"])


def inside_ledger() -> None:
    """`llmtally migrate`, then one LiteLLM call recorded against a user and read back."""
    import asyncio

    import llmtally

    out = ok([llmtally_cli(), "migrate"])
    check("schema is current" in out, f"unexpected `llmtally migrate` output: {out}")

    async def record() -> None:
        import litellm

        async with llmtally.Ledger() as ledger:
            await ledger.upsert_user(USER, email="smoke@example.com", provider="password")
            await litellm.acompletion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "Hello"}],
                metadata={"user_profile_id": USER},
                mock_response="Hi",
            )

    asyncio.run(record())
    usage = llmtally.get_user_analytics(USER)
    check(usage.requests.total == 1 and usage.tokens.total == 30, f"recorded usage is wrong: {usage}")


def inside_up_without_app() -> None:
    result = run([llmtally_cli(), "up"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    check(result.returncode != 0, "`llmtally up` without the app extra exited 0")
    check(lines == [MISSING_APP], f"`llmtally up` without the app extra printed:\n{result.stderr}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def inside_up() -> None:
    """`llmtally up` on a free port: health, the Chainlit login page, /metrics, the JSON API with a token."""
    token = ok([llmtally_cli(), "tokens", "create", USER, "--name", "smoke"]).strip()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = Path(os.environ["LLMTALLY_HOME"]) / "up.log"
    with log.open("w") as out:
        server = subprocess.Popen([llmtally_cli(), "up", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            check(server.poll() is None, f"`llmtally up` exited {server.returncode}:\n{log.read_text()}")
            try:
                status, body = get(f"{base}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            check(time.monotonic() < deadline, f"`llmtally up` not healthy after 120 s:\n{log.read_text()}")
            time.sleep(0.25)
        check(json.loads(body)["status"] == "ok", f"/healthz: {body}")
        status, body = get(f"{base}/login")
        check(status == 200 and "<html" in body.lower(), f"/login answered {status}")
        status, body = get(f"{base}/metrics")
        check(status == 200 and "llmtally_events_accepted" in body, f"/metrics answered {status}")
        status, _ = get(f"{base}/api/v1/usage/me")
        check(status == 401, f"/api/v1/usage/me without a token answered {status}")
        status, body = get(f"{base}/api/v1/usage/me", token)
        check(status == 200, f"/api/v1/usage/me answered {status}: {body}")
        check(json.loads(body)["requests"]["total"] == 1, f"/api/v1/usage/me: {body}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            raise SmokeFailure(f"`llmtally up` did not stop on SIGTERM:\n{log.read_text()}") from None


def inside_proxy() -> None:
    import importlib.metadata

    # What `litellm --config ...` imports first (about 20 s of CPU: the reason `litellm --help` is not run too).
    ok([sys.executable, "-c", "import litellm.proxy.proxy_server"])
    ok([sys.executable, "-c", "import llmtally.proxy"])  # the plug-in (docs/litellm-proxy.md) imports there
    mcp = importlib.metadata.version("mcp")
    check(int(mcp.split(".")[0]) >= 2, f"the proxy group installed mcp {mcp}; the proxy needs mcp>=2.3")


def inside(env: str) -> None:
    steps = [inside_imports]
    if env == "proxy":
        steps.append(inside_proxy)
    else:
        steps += [inside_ledger, inside_up_without_app if env == "core" else inside_up]
    for step in steps:
        started = time.monotonic()
        step(env) if step is inside_imports else step()  # type: ignore[operator]
        print(f"  {env}: {step.__name__.removeprefix('inside_')} {time.monotonic() - started:.1f} s", flush=True)


# -- the orchestrator --------------------------------------------------------------------------------


def uv_tools() -> tuple[Path, dict[str, str]]:
    sys.path.insert(0, str(ROOT))
    import dev  # the pinned uv of dev.py, installed into .tools/ once

    return dev.ensure_uv(), dev.uv_env()


def export(uv: Path, env: dict[str, str], *args: str) -> str:
    """Pins from uv.lock, with their hashes, as a requirements file."""
    return ok(
        [str(uv), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header", "-q", *args], cwd=ROOT, env=env
    )


def declared_requirements(wheel: Path, extra: str) -> list[str]:
    """The wheel's Requires-Dist lines: the core's, and the extra's without their `extra == ...` marker."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    found = []
    for requirement in metadata.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        if "extra ==" not in marker:
            found.append(requirement)
        elif marker.strip() in {f"extra == '{extra}'", f'extra == "{extra}"'}:
            found.append(spec.strip())
    return found


def installed(uv: Path, env: dict[str, str], python: Path) -> dict[str, str]:
    rows = json.loads(ok([str(uv), "pip", "list", "-q", "--format", "json", "--python", str(python)], env=env))
    return {row["name"]: row["version"] for row in rows}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:3] if part.isdigit())


def smoke(name: str, uv: Path, env: dict[str, str], work: Path, wheel: Path) -> list[str]:
    """Create, install and check one environment; the lines to report."""
    report: list[str] = []
    venv = work / name
    python = venv / "bin" / "python"
    ok([str(uv), "venv", "-q", str(venv)], env=env)
    install = [str(uv), "pip", "install", "-q", "--python", str(python)]
    pins = work / f"{name}-pins.txt"
    if name == "core":
        pins.write_text(export(uv, env))
        ok([*install, str(wheel), "-c", str(pins)], env=env)
    elif name == "proxy":
        pins.write_text(export(uv, env, "--group", "proxy"))
        ok([*install, str(wheel), "-r", str(pins)], env=env)
    elif name == "app":
        pins.write_text(export(uv, env, "--extra", "app"))
        ok([*install, f"llmtally[app] @ {wheel.as_uri()}", "-c", str(pins)], env=env)
    else:
        # lowest-direct lowers only the requirements named on the command line: name the wheel's own.
        pins.write_text("\n".join(declared_requirements(wheel, "app")) + "\n")
        ok([*install, "--resolution", "lowest-direct", f"llmtally[app] @ {wheel.as_uri()}", "-r", str(pins)], env=env)
        versions = installed(uv, env, python)
        locked = [line for line in export(uv, env, "--extra", "app").splitlines() if line.startswith("fastapi==")]
        lock_fastapi = locked[0].split("==")[1].split()[0]
        direct = sorted({re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0] for r in declared_requirements(wheel, "app")})
        report.append(f"  lowest: fastapi {versions['fastapi']} (lock {lock_fastapi})")
        report.append("  lowest: " + ", ".join(f"{n} {versions.get(n, '?')}" for n in direct))
        check(version_tuple(versions["fastapi"]) < version_tuple(lock_fastapi), "lowest did not get an older FastAPI")
    home = work / f"home-{name}"
    home.mkdir()
    inner = {
        k: v for k, v in os.environ.items() if not k.startswith(("LLMTALLY_", "VIRTUAL_ENV")) and k != "DATABASE_URL"
    }
    inner |= {"LLMTALLY_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "COLUMNS": "200"}
    inner.pop("PYTHONPATH", None)
    result = run([str(python), str(Path(__file__).resolve()), "--inside", name], env=inner, cwd=home, timeout=600)
    if result.returncode != 0:
        raise SmokeFailure(f"checks in {name} failed:\n{result.stdout}{result.stderr}")
    report += result.stdout.splitlines()
    if name == "core":
        # An application that pins an old FastAPI can still add llmtally's core.
        ok([*install, "--dry-run", str(wheel), "fastapi==0.115.0", "-c", str(pins)], env=env)
        report.append("  core: resolves next to fastapi==0.115.0")
    return report


def smoke_timed(name: str, uv: Path, env: dict[str, str], work: Path, wheel: Path) -> tuple[bool, str]:
    started = time.monotonic()
    try:
        report = smoke(name, uv, env, work, wheel)
    except (SmokeFailure, subprocess.TimeoutExpired) as exc:
        return False, f"package smoke: {name} FAILED ({time.monotonic() - started:.1f} s)\n{exc}"
    return True, "\n".join([*report, f"package smoke: {name} ok ({time.monotonic() - started:.1f} s)"])


def stop_leftovers(work: Path) -> None:
    """Stop any process still running from the work directory (an embedded PostgreSQL a failed check left)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(work) in cmdline and int(proc.name) != os.getpid():
            print(f"package smoke: stopping leftover process {proc.name}: {cmdline.replace(chr(0), ' ')[:200]}")
            with contextlib.suppress(OSError):
                os.kill(int(proc.name), signal.SIGTERM)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", metavar="ENV", help=f"some of {', '.join(ENVS)} (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the build and the environments (path printed)")
    parser.add_argument("--jobs", type=int, default=2, help="environments built and checked at once (default 2)")
    parser.add_argument("--inside", choices=ENVS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.envs) - set(ENVS))
    if unknown:
        parser.error(f"unknown environment(s) {', '.join(unknown)}: choose from {', '.join(ENVS)}")
    if args.inside:
        try:
            inside(args.inside)
        except SmokeFailure as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0

    uv, env = uv_tools()
    work = Path(tempfile.mkdtemp(prefix="llmtally-smoke-"))
    started = time.monotonic()
    failed: list[str] = []
    try:
        step = time.monotonic()
        ok([str(uv), "build", "-q", "--out-dir", str(work / "dist")], cwd=ROOT, env=env)  # sdist, then wheel from it
        wheels, sdists = sorted((work / "dist").glob("*.whl")), sorted((work / "dist").glob("*.tar.gz"))
        check(len(wheels) == 1 and len(sdists) == 1, f"uv build made {wheels + sdists}")
        print(
            f"package smoke: built {wheels[0].name} and {sdists[0].name} ({time.monotonic() - step:.1f} s)", flush=True
        )
        # Two at a time: one installs (mostly I/O) while the other runs its checks.
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(smoke_timed, n, uv, env, work, wheels[0]): n for n in args.envs or ENVS}
            for future in concurrent.futures.as_completed(futures):
                passed, text = future.result()
                print(text, flush=True)
                if not passed:
                    failed.append(futures[future])
    except SmokeFailure as exc:
        print(f"package smoke: {exc}", file=sys.stderr)
        return 1
    finally:
        stop_leftovers(work)
        if args.keep:
            print(f"package smoke: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.monotonic() - started
    if failed:
        print(f"package smoke: {len(failed)} failed ({', '.join(failed)}) in {total:.0f} s", file=sys.stderr)
        return 1
    print(f"package smoke: every environment passed in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
