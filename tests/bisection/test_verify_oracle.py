"""End to end with parity's own oracles: ``parity verify`` on a record whose preprocess
depends on a tiny package that changes its encoding in its bad version, and ``parity
bench --against`` a baseline where the bad version makes preprocess 50 ms slower."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tinywheels import build_wheel

from parity.bisection import IndexOptions, bisect
from parity.bisection.trials import find_uv

MODEL = """\
import tinytok
import torch

from parity.target import Pipeline


def build():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(64, 8), torch.nn.Linear(8, 4)).eval()
    return Pipeline(model=model, preprocess=lambda texts: torch.tensor([tinytok.encode(t) for t in texts]),
                    example_inputs=["abcd", "efgh"])
"""


def _record_in_good_env(tmp_path: Path, wheels: Path) -> Path:
    """Record the model with tinytok 1.0 and helper-a 1.0 on the import path (the good env:
    this interpreter plus those two)."""
    site = tmp_path / "goodsite"
    subprocess.run([find_uv(), "pip", "install", "--quiet", "--no-deps", "--python", sys.executable, "--target",
                    str(site), "--no-index", "--find-links", str(wheels), "tinytok==1.0", "helper-a==1.0"], check=True)
    (tmp_path / "model.py").write_text(MODEL)
    env = {**os.environ, "PYTHONPATH": str(site)}
    record = tmp_path / "rec"
    # Recorded as a relative file in the folder bisect runs from: parity may run it without TARGET.
    subprocess.run([sys.executable, "-m", "parity", "record", "model.py:build", "-o", str(record)],
                   env=env, check=True, capture_output=True, cwd=tmp_path)
    return record


@pytest.mark.slow  # three `parity verify` runs of a real (tiny) torch model
def test_verify_oracle_finds_the_package_that_changed_preprocess(tmp_path: Path, wheels: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    build_wheel(wheels, "tinytok", "1.0", "def encode(t):\n    return [ord(c) % 50 for c in t]\n")
    build_wheel(wheels, "tinytok", "2.0", "def encode(t):\n    return [(ord(c) + 1) % 50 for c in t]\n")
    build_wheel(wheels, "helper-a", "1.0")
    build_wheel(wheels, "helper-a", "2.0")
    record = _record_in_good_env(tmp_path, wheels)
    snap = json.loads((record / "env.json").read_text())
    assert snap["packages"]["tinytok"]["version"] == "1.0"
    for name in ("tinytok", "helper-a"):
        snap["packages"][name]["version"] = "2.0"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(snap))
    # No oracle given: `parity verify` on --good's record (the reference made in the good env).
    result = bisect(record, bad, index=IndexOptions((str(wheels),), no_index=True), cache_dir=tmp_path / "cache")
    assert result.oracle == f"parity verify {record} model.py:build"
    assert result.status == "found", (result.reason, [t.to_json() for t in result.trials])
    assert [(c.name, c.good, c.bad) for c in result.culprits] == [("tinytok", "1.0", "2.0")]
    assert all(t.mode == "overlay" for t in result.trials), "torch is never reinstalled: overlays only"
    assert "-m parity verify" in result.reproduce
    line = result.reproduce
    assert subprocess.run(["sh", "-c", line], capture_output=True, check=False).returncode == 1


@pytest.mark.slow  # several `parity bench` runs; the slowdown is 50 ms per call, far above noise
def test_bench_oracle_finds_the_package_that_slowed_preprocess(tmp_path: Path, wheels: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    build_wheel(wheels, "tinytok", "1.0", "def encode(t):\n    return [ord(c) % 50 for c in t]\n")
    build_wheel(wheels, "tinytok", "2.0",
                "import time\ndef encode(t):\n    time.sleep(0.05)\n    return [ord(c) % 50 for c in t]\n")
    build_wheel(wheels, "helper-a", "1.0")
    site = tmp_path / "goodsite"
    subprocess.run([find_uv(), "pip", "install", "--quiet", "--no-deps", "--python", sys.executable, "--target",
                    str(site), "--no-index", "--find-links", str(wheels), "tinytok==1.0", "helper-a==1.0"], check=True)
    (tmp_path / "model.py").write_text(MODEL)
    baseline = tmp_path / "base.json"
    subprocess.run([sys.executable, "-m", "parity", "bench", "model.py:build", "-o", str(baseline),
                    "--min-time", "0.5"], env={**os.environ, "PYTHONPATH": str(site)}, check=True, capture_output=True)
    snap = json.loads(baseline.read_text())["env"]
    snap["packages"]["tinytok"]["version"] = "2.0"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(snap))
    result = bisect(baseline, bad, f"bench:{baseline}", runs=3, index=IndexOptions((str(wheels),), no_index=True),
                    cache_dir=tmp_path / "cache")
    assert result.status == "found", (result.reason, [t.to_json() for t in result.trials])
    assert [(c.name, c.good, c.bad) for c in result.culprits] == [("tinytok", "1.0", "2.0")]
    assert "-m parity bench" in result.reproduce and "--against" in result.reproduce
