"""A model class defined in the TARGET file has the same module name in every process,
so a bench baseline taken in one process is comparable in the next (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parity.target import load_target

TARGET = '''
import torch
from parity import Pipeline


class Scorer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x)


def build():
    return Pipeline(model=Scorer().eval(), example_inputs=[torch.full((4,), float(i)) for i in range(4)],
                    batch_size=2, name="scorer")
'''


def _parity(cwd: Path, seed: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A fresh `parity` process whose str hashes are salted with ``seed``."""
    env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "parity", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _class_in_fresh_process(path: Path, seed: str) -> str:
    code = ("import sys; from parity.target import load_target; "
            "m = load_target(sys.argv[1]).pipeline.model; print(type(m).__module__)")
    env = {**os.environ, "PYTHONHASHSEED": seed}
    proc = subprocess.run([sys.executable, "-c", code, f"{path}:build"], env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return proc.stdout.strip()


def test_module_name_is_the_same_in_every_process(tmp_path: Path) -> None:
    path = tmp_path / "serving.py"
    path.write_text(TARGET)
    names = {_class_in_fresh_process(path, seed) for seed in ("1", "2", "3")}
    assert len(names) == 1, names
    (name,) = names
    assert name.startswith("_parity_target_")
    assert type(load_target(f"{path}:build").pipeline.model).__module__ == name


@pytest.mark.slow
def test_bench_against_a_baseline_from_another_process(tmp_path: Path) -> None:
    (tmp_path / "serving.py").write_text(TARGET)
    fast = ("--min-time", "0.05", "--min-iters", "5")
    proc = _parity(tmp_path, "1", "bench", "serving.py:build", "-o", "base.json", *fast)
    assert proc.returncode == 0, proc.stderr
    proc = _parity(tmp_path, "2", "bench", "serving.py:build", "--against", "base.json",
                   "--max-slowdown", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "not comparable" not in proc.stderr
    assert json.loads(proc.stdout)["comparison"]["forced_mismatches"] == []


@pytest.mark.slow
def test_verify_max_slowdown_against_a_record_from_another_process(tmp_path: Path) -> None:
    (tmp_path / "serving.py").write_text(TARGET)
    proc = _parity(tmp_path, "1", "record", "serving.py:build", "--bench", "-o", "golden")
    assert proc.returncode == 0, proc.stderr
    proc = _parity(tmp_path, "2", "verify", "golden", "--max-slowdown", "1000", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "not comparable" not in proc.stderr
    assert json.loads(proc.stdout)["performance"]["forced_mismatches"] == []


def test_old_baselines_named_by_process_hash_stay_comparable() -> None:
    from parity.benchmark.compare import comparability_problems

    old = {"batch_size": 2, "model": {"class": "_parity_target_8150617212949.Scorer", "name": "scorer"}}
    new = {"batch_size": 2, "model": {"class": "_parity_target_0123456789abcdef.Scorer", "name": "scorer"}}
    other = {"batch_size": 2, "model": {"class": "_parity_target_0123456789abcdef.Ranker", "name": "scorer"}}
    assert comparability_problems(new, old) == []
    assert comparability_problems(other, old) == ["model class '<target file>.Ranker' vs baseline "
                                                  "'<target file>.Scorer'"]
