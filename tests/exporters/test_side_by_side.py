"""--bench: eager and artifact side by side, honest about a slower artifact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_testing import target

from parity.exporters.side_by_side import compare_sides


def _doc(seconds: list[float], batch: int = 4) -> dict:
    s = sorted(seconds)
    return {"batch_size": batch, "load_seconds": 0.5, "peak_rss_bytes": 10_000_000, "warnings": [],
            "stages": {"model": {"samples": seconds, "p50": s[len(s) // 2], "p99": s[-1]}}}


def test_slower_artifact_is_said_plainly() -> None:
    eager = _doc([0.010 + 0.0001 * (i % 5) for i in range(40)])
    artifact = _doc([0.020 + 0.0001 * (i % 5) for i in range(40)])
    sbs = compare_sides(eager, artifact, 4, file_bytes=1234)
    assert sbs.ratio == pytest.approx(2.0, rel=0.05) and sbs.ratio_ci[0] > 1.0
    assert sbs.verdict.startswith("the artifact is SLOWER than eager")
    doc = sbs.to_json()
    assert doc["artifact"]["file_bytes"] == 1234 and doc["eager"]["items_per_s"] == pytest.approx(4 / 0.0102, rel=0.05)


def test_overlapping_timings_are_no_clear_difference() -> None:
    same = [0.010 + 0.001 * (i % 7) for i in range(40)]
    assert compare_sides(_doc(same), _doc(list(reversed(same))), 4, 1).verdict.startswith("no clear speed difference")


@pytest.mark.slow
def test_cli_bench_reports_both_sides(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("export", target("convnet_model.py"), "--format", "torchscript", "-o", tmp_path / "c.pt",
                           "--bench", "--json")
    bench = json.loads(out)["bench"]
    assert code == 0
    for side in ("eager", "artifact"):
        assert bench[side]["p50"] > 0 and bench[side]["p99"] >= bench[side]["p50"]
        assert bench[side]["load_seconds"] is not None and bench[side]["peak_rss_bytes"] > 0
    assert bench["artifact"]["file_bytes"] == (tmp_path / "c.pt").stat().st_size
    low, high = bench["ratio_ci"]
    assert low <= bench["ratio"] <= high and bench["verdict"]
