"""The public surface of parity.benchmark is explicit and pinned (others import these names)."""

from __future__ import annotations

import subprocess
import sys

import parity.benchmark


def test_exported_members_are_pinned():
    assert sorted(parity.benchmark.__all__) == [
        "BenchComparison", "BenchConfig", "BenchResult", "StageComparison", "bench", "bench_for_record",
        "bench_from_file", "compare_bench", "verify_performance",
    ]
    for name in parity.benchmark.__all__:
        assert getattr(parity.benchmark, name).__module__.startswith("parity.benchmark.")


def test_importing_parity_bench_does_not_import_torch():
    code = "import sys, parity.benchmark; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
