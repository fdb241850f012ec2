#!/usr/bin/env python3
"""Run llmtally from a fresh clone with nothing but Python >= 3.11 and git.

    python3 dev.py run  [ARGS...]   the main job: the chat app (`llmtally up ARGS`)
    python3 dev.py test [ARGS...]   the whole test suite (`pytest ARGS`)
    python3 dev.py lint             ruff, mypy, the import contracts (lint-imports) and the pylock check
    python3 dev.py llmtally ARGS    any llmtally command
    python3 dev.py bench [ARGS...]  the benchmarks (`python bench/run.py ARGS`, see docs/benchmarks.md)
    python3 dev.py proxy-env        only build .venv-proxy (below)

The first run installs the pinned uv (hash-checked, from tools/uv-requirements.txt) into .tools/,
then `uv sync --frozen` builds .venv from uv.lock (every package pinned with its hashes).
`test` also builds .venv-proxy: llmtally with the LiteLLM Proxy's dependencies (the `proxy` group of
pyproject.toml, which cannot share .venv), where the proxy tests run `litellm --config`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
UV_REQUIREMENTS = ROOT / "tools" / "uv-requirements.txt"


def fail(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr)
    sys.exit(1)


def tools_bin(name: str) -> Path:
    return TOOLS / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_uv() -> Path:
    uv = tools_bin("uv.exe" if os.name == "nt" else "uv")
    marker = TOOLS / "uv-requirements.txt"
    wanted = UV_REQUIREMENTS.read_text()
    if uv.exists() and marker.exists() and marker.read_text() == wanted:
        return uv
    print("dev.py: installing the pinned uv into .tools/ (once)", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
    subprocess.run(
        [
            str(tools_bin("python")),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--require-hashes",
            "--only-binary",
            ":all:",
            "-r",
            str(UV_REQUIREMENTS),
        ],
        check=True,
    )
    marker.write_text(wanted)
    return uv


def uv_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # use the Python running this script
    env.setdefault("UV_PYTHON", sys.executable)
    return env


def sync(uv: Path) -> None:
    """Build .venv from uv.lock; compile its bytecode once per lock.

    Python writes no bytecode where PYTHONDONTWRITEBYTECODE is set (as on CI machines), so without this
    every process would compile LiteLLM again (about 10 s of each `llmtally` start). uv compiles the whole
    environment when asked, which takes a while even when nothing changed: it is asked only when uv.lock did.
    """
    subprocess.run([str(uv), "sync", "--frozen", "--quiet"], cwd=ROOT, env=uv_env(), check=True)
    marker = ROOT / ".venv" / ".llmtally-bytecode"
    stamp = hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    if marker.exists() and marker.read_text() == stamp:
        return
    print("dev.py: compiling the environment's bytecode (once per uv.lock)", flush=True)
    subprocess.run([str(uv), "sync", "--frozen", "--quiet", "--compile-bytecode"], cwd=ROOT, env=uv_env(), check=True)
    marker.write_text(stamp)


PROXY_ENV = ROOT / ".venv-proxy"


def sync_proxy(uv: Path) -> Path:
    """Build .venv-proxy from uv.lock (llmtally + the proxy group, no dev group), bytecode compiled, once
    per uv.lock: the proxy's `litellm` imports for about 20 s of CPU without bytecode. Returns its bin/.

    From uv's cache this takes about 25 s (most of it compiling); a clone with an empty cache also
    downloads the group's wheels (about 200 MB). An unchanged lock costs nothing.
    """
    marker = PROXY_ENV / ".llmtally-bytecode"
    stamp = hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    if not (marker.exists() and marker.read_text() == stamp):
        print("dev.py: building .venv-proxy for the LiteLLM Proxy tests (once per uv.lock)", flush=True)
        env = uv_env() | {"UV_PROJECT_ENVIRONMENT": str(PROXY_ENV)}
        command = [str(uv), "sync", "--frozen", "--quiet", "--no-dev", "--group", "proxy", "--compile-bytecode"]
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        marker.write_text(stamp)
    return PROXY_ENV / ("Scripts" if os.name == "nt" else "bin")


# pylock.toml (PEP 751) is uv.lock exported to the standard format, for tools that read only that.
# The proxy group conflicts with the app extra (pyproject.toml, [tool.uv] conflicts) and is not part of it.
PYLOCK_EXPORT = ("export", "--frozen", "--format", "pylock.toml", "--all-extras", "--all-groups", "--no-group", "proxy")
PYLOCK_EXPORT += ("--no-emit-project", "--no-header", "--quiet")


def check_pylock(uv: Path) -> int:
    """pylock.toml must be uv.lock's export: regenerate it with `uv export ... -o pylock.toml`."""
    exported = subprocess.run([str(uv), *PYLOCK_EXPORT], cwd=ROOT, env=uv_env(), capture_output=True, text=True)
    if exported.returncode != 0:
        print(exported.stderr, file=sys.stderr)
        return exported.returncode
    if (ROOT / "pylock.toml").read_text(encoding="utf-8") != exported.stdout:
        command = " ".join(("uv", *PYLOCK_EXPORT, "-o", "pylock.toml"))
        print(f"dev.py: pylock.toml differs from uv.lock: run `{command}`", file=sys.stderr)
        return 1
    return 0


def uv_run(uv: Path, *command: str) -> int:
    return subprocess.run([str(uv), "run", "--frozen", "--no-sync", *command], cwd=ROOT, env=uv_env()).returncode


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036  (dev.py must run, and explain, on older Pythons)
        fail(f"llmtally needs Python >= 3.11 (this is {sys.version.split()[0]})")
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    what, rest = argv[0], argv[1:]
    if what not in {"run", "test", "lint", "llmtally", "bench", "proxy-env"}:
        fail(f"unknown command {what!r}: use run, test, lint, llmtally, bench or proxy-env")
    try:
        uv = ensure_uv()
        if what == "proxy-env":
            sync_proxy(uv)
            return 0
        sync(uv)
        if what == "test":
            sync_proxy(uv)
    except subprocess.CalledProcessError as exc:
        fail(f"setting up the environment failed (exit {exc.returncode}); see the output above")
    if what == "run":
        return uv_run(uv, "llmtally", "up", *rest)
    if what == "llmtally":
        return uv_run(uv, "llmtally", *rest)
    if what == "bench":
        return uv_run(uv, "python", "bench/run.py", *rest)
    if what == "lint":
        paths = [p for p in ("src", "tests", "scripts", "bench", "dev.py") if (ROOT / p).exists()]
        code = uv_run(uv, "ruff", "check", *paths) or uv_run(uv, "ruff", "format", "--check", *paths)
        code = code or uv_run(uv, "mypy", "src") or uv_run(uv, "lint-imports", "--no-cache")
        return code or check_pylock(uv)
    code = uv_run(uv, "pytest", *rest)
    if code == 5:
        print("dev.py: pytest ran no tests; that is a failure", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
