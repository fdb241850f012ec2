"""Every Python block of README.md and docs/integration.md runs as pasted, on the embedded database.

One subprocess per file runs its blocks in order, each in a fresh namespace (so a block that uses a name
it does not define fails) with ``__name__ == "__main__"``; LiteLLM's import is paid once per file. The
blocks make their calls with ``mock_response``, so no API key or network is needed. Afterwards the
test reads the database the blocks wrote to and checks the calls they recorded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from llmtally.db import Database
from llmtally.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a new interpreter per file, importing LiteLLM

BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)

RUNNER = """
import json, sys
path, blocks = sys.argv[1], json.load(open(sys.argv[2]))
for line, code in blocks:
    print(f"--- {path}:{line}", flush=True)
    # Padding keeps the line numbers of a traceback those of the Markdown file.
    exec(compile("\\n" * line + code, path, "exec"), {"__name__": "__main__"})
"""


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line of the first code line - 1, code) of each ```python block."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)), m.group(1)) for m in BLOCK.finditer(text)]


def run_blocks(doc: str, home: Path) -> str:
    blocks = python_blocks(ROOT / doc)
    assert blocks, f"{doc} has no python block"
    (home / "blocks.json").write_text(json.dumps(blocks))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMTALLY_") and k != "DATABASE_URL"}
    env |= {"LLMTALLY_HOME": str(home), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, doc, str(home / "blocks.json")],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"a block of {doc} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.count("--- ") == len(blocks)
    return result.stdout


def recorded(home: Path) -> Counter[tuple[str | None, str]]:
    db = Database.from_settings(Settings(home=home)).open()
    try:
        rows = db.fetch_all("select user_profile_id, status from request_logs")
    finally:
        db.close()
    return Counter((row["user_profile_id"], row["status"]) for row in rows)


ADA, GITHUB_USER = "google_117195204714065447709", "github_583231"


@pytest.mark.parametrize(
    ("doc", "printed", "calls"),
    [
        (
            "README.md",
            [f"{ADA}: requests 1, tokens 30, cost $"],
            {(ADA, "success"): 1},
        ),
        (
            "docs/integration.md",
            [f"{ADA} 1 request(s)", "Hi!", "stopped after: ", "0 stored row(s) repriced; ['openai/acme-internal-llm']"],
            {(ADA, "success"): 1, (GITHUB_USER, "success"): 1, (GITHUB_USER, "cancelled"): 1},
        ),
    ],
)
def test_python_blocks_run_as_pasted(
    doc: str, printed: list[str], calls: dict[tuple[str, str], int], tmp_path: Path
) -> None:
    out = run_blocks(doc, tmp_path)
    for text in printed:
        assert text in out, out
    assert recorded(tmp_path) == Counter(calls)
