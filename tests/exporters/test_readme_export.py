"""The README's "## Export" commands run verbatim (with the walkthrough's serving.py and MiniLM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from readme_tools import code_blocks, parity_env, run, section, serving_folder


@pytest.mark.slow
def test_export_section_commands_run(tmp_path: Path, minilm_dir: Path) -> None:
    serving_folder(tmp_path, minilm_dir)
    env = parity_env(tmp_path)
    (block,) = code_blocks(section("## Export"), "bash")
    outputs = []
    for line in [line for line in block.splitlines() if line.strip()]:
        proc = run(line, tmp_path, env)
        assert proc.returncode == 0, (line, proc.stdout[-2000:], proc.stderr[-2000:])
        outputs.append(proc.stdout)
    assert "PASS" in outputs[0] and "batch" in outputs[0]
    assert (tmp_path / "model.pt2").is_file() and (tmp_path / "golden-pt2" / "manifest.json").is_file()
