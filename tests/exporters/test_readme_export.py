"""The README's "## Export" commands run verbatim (with the walkthrough's serving.py and MiniLM)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(title + "\n")
    nxt = README.find("\n## ", start + len(title))
    return README[start: nxt if nxt != -1 else None]


@pytest.mark.slow
def test_export_section_commands_run(tmp_path: Path, minilm_dir: Path) -> None:
    (serving,) = re.findall(r"```python\n(.*?)```", _section("## Your own model"), flags=re.DOTALL)
    (tmp_path / "serving.py").write_text(serving)
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "model").symlink_to(minilm_dir, target_is_directory=True)
    shim = tmp_path / "bin" / "parity"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m parity "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH=f"{shim.parent}{os.pathsep}{os.environ['PATH']}", HF_HUB_OFFLINE="1")
    (block,) = re.findall(r"```bash\n(.*?)```", _section("## Export"), flags=re.DOTALL)
    outputs = []
    for line in [line for line in block.splitlines() if line.strip()]:
        proc = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, (line, proc.stdout[-2000:], proc.stderr[-2000:])
        outputs.append(proc.stdout)
    assert "PASS" in outputs[0] and "batch" in outputs[0]
    assert (tmp_path / "model.pt2").is_file() and (tmp_path / "golden-pt2" / "manifest.json").is_file()
