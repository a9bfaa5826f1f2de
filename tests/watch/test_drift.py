"""Live statistics against the golden ranges: quiet on ordinary traffic, loud on real drift."""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import pytest
import torch
from watch_testing import metric_lines

import parity
from parity.demo.scenarios import EXAMPLE_INPUTS
from parity.watch.drift import BIG, DriftTracker, GoldenRange, golden_ranges, score

WORDS = " ".join(EXAMPLE_INPUTS).split()


def traffic(w: Any, n: int, seed: int = 0) -> None:
    """``n`` requests of 1-3 made-up reviews from the demo's words (not the golden inputs)."""
    rng = random.Random(seed)
    for _ in range(n):
        batch = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(rng.randint(1, 3))]
        with torch.no_grad():
            w(batch)


def test_ordinary_traffic_stays_inside_the_golden_ranges(make_watch, pipeline):
    w = make_watch(pipeline, sample_every=1)
    traffic(w, 60)
    drift = w.status().drift
    assert drift["enabled"] and len(drift["layers"]) == 30
    assert drift["max"] < drift["threshold"] and drift["out_of_range"] == []


def test_a_scaled_layer_is_out_of_range_in_status_logs_and_metrics(make_watch, pipeline, registry, caplog):
    alarms: list[Any] = []
    w = make_watch(pipeline, sample_every=1, drift_alarm=2.0, on_alarm=alarms.append)
    traffic(w, 20)
    with torch.no_grad():
        pipeline.model.norm_in.weight.mul_(3.0)  # e.g. a LayerNorm weight loaded from another checkpoint
    with caplog.at_level(logging.WARNING, logger="parity.watch"):
        traffic(w, 25, seed=1)
    out = {d["layer"]: d for d in w.status().drift["out_of_range"]}
    assert "norm_in#0/out" in out and out["norm_in#0/out"]["component"] in ("std", "range")
    assert max(d["score"] for d in out.values()) >= 2.0
    logged = [json.loads(r.getMessage()) for r in caplog.records]
    assert any(x["event"] == "drift" and x["out_of_range"] for x in logged)
    assert [a.kind for a in alarms][:1] == ["drift"] and alarms[0].layers
    m = metric_lines(registry)
    assert m['parity_watch_layers_out_of_range{watch="demo-reference"}'] >= 1
    assert m['parity_watch_layer_drift{layer="norm_in#0/out",watch="demo-reference"}'] >= 1.0


def test_nan_outputs_score_the_maximum(make_watch, pipeline):
    w = make_watch(pipeline, sample_every=1)
    with torch.no_grad():
        pipeline.model.head.bias[0] = float("nan")
    traffic(w, 2)
    top = w.status().drift["layers"][0]
    assert (top["score"], top["component"]) == (BIG, "nan") and top["layer"] in ("head#0/out", "#0/out")


def test_no_layer_statistics_no_sampling(make_watch, pipeline, tmp_path):
    parity.record(pipeline, out=tmp_path / "outputs-only", capture="outputs", snapshot_env=False)
    w = make_watch(pipeline, golden=tmp_path / "outputs-only", sample_every=1)
    traffic(w, 3)
    status = w.status()
    assert status.sampled == 0 and "no layer statistics" in status.drift["why_not"]
    assert w.check().verdict == "PASS"


def _range(**kw: Any) -> GoldenRange:
    base: dict[str, Any] = {"mean": (0.0, 0.1), "std": (1.0, 1.2), "low": -3.0, "high": 3.0, "scale": 1.0,
                            "nonfinite": False, "shapes": frozenset({(3, 32)})}
    return GoldenRange(**{**base, **kw})


def _live(**kw: Any) -> dict[str, Any]:
    return {"mean": 0.05, "std": 1.1, "min": -2.0, "max": 2.0, "nan": 0, "inf": 0, "shape_ok": True, **kw}


@pytest.mark.parametrize(("live", "want"), [
    (_live(), (0.0, None)),
    (_live(mean=2.1), (2.0, "mean")),
    (_live(std=4.8), (2.0, "std")),
    (_live(std=0.25), (2.0, "std")),
    (_live(max=6.0), (0.5, "range")),
    (_live(inf=1), (BIG, "inf")),
    (_live(shape_ok=False), (BIG, "shape")),
])
def test_score_components(live, want):
    value, component = score(_range(), live)
    assert value == pytest.approx(want[0])
    if want[1]:
        assert component == want[1]


def test_windows_forget_old_samples_and_shapes_are_checked():
    entries = [{"key": "l#0/out", "shape": [4, 7, 32], "stats": {"min": -1, "max": 1, "mean": 0, "std": 1,
                                                                "nan": 0, "inf": 0}}]
    tracker = DriftTracker(golden_ranges(entries), window=3)
    bad = {"min": -1, "max": 1, "mean": 5.0, "std": 1, "nan": 0, "inf": 0}
    good = {**bad, "mean": 0.0}
    tracker.add([("l#0/out", (1, 9, 32), "float32", bad)])
    assert tracker.out_of_range()[0].component == "mean"
    for _ in range(3):
        tracker.add([("l#0/out", (1, 9, 32), "float32", good), ("unknown#0/out", (1,), "float32", good)])
    assert tracker.out_of_range() == [] and [d.layer for d in tracker.layers()] == ["l#0/out"]
    tracker.add([("l#0/out", (1, 9, 64), "float32", good)])
    assert tracker.out_of_range()[0].component == "shape"
