"""The README's "## Bench" commands run verbatim (with the walkthrough's serving.py and MiniLM)."""

from __future__ import annotations

import json

import pytest

from readme_tools import code_blocks, parity_env, run, section, serving_folder


@pytest.mark.slow
def test_bench_section_commands_run(tmp_path, minilm_dir):
    serving_folder(tmp_path, minilm_dir)
    env = parity_env(tmp_path)
    (block,) = code_blocks(section("## Bench"), "bash")
    first, second = [line for line in block.splitlines() if line.strip()]
    proc = run(first, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "bench-a.json").read_text())["threads"]["torch"] == 1
    proc = run(second, tmp_path, env)
    # 1 would be a real regression of more than 50% between two runs on a shared machine:
    # the command worked either way, and says which.
    assert proc.returncode in (0, 1), proc.stderr
    assert "end_to_end" in proc.stdout and ("NO SIGNIFICANT CHANGE" in proc.stdout or "REGRESSION" in proc.stdout
                                            or "INCONCLUSIVE" in proc.stdout
                                            or "SLOWER" in proc.stdout or "FASTER" in proc.stdout)
