"""The README's "Environment: snapshot and diff" commands run verbatim (parity on PATH)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
TITLE = "## Environment: snapshot and diff"


def section() -> str:
    start = README.index(TITLE + "\n")
    nxt = README.find("\n## ", start + len(TITLE))
    return README[start: nxt if nxt != -1 else None]


@pytest.mark.slow
def test_section_commands_run(tmp_path):
    (block,) = re.findall(r"```bash\n(.*?)```", section(), flags=re.DOTALL)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "identical" in proc.stdout
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    assert runtime["runtime"]["torch"]["version"] == "2.13.0+cpu"


def test_section_names_real_files():
    text = section()
    root = Path(__file__).resolve().parents[2]
    for path in re.findall(r"`(src/parity/[\w/.]+)`", text):
        assert (root / path).is_file(), path
