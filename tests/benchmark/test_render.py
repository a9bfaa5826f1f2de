"""Rich renderers: units scaled for humans, every stage and suspect shown."""

from __future__ import annotations

import io

from bench_helpers import lognormal, synthetic_result
from rich.console import Console

from parity.benchmark import compare_bench
from parity.benchmark.render import (
    bench_renderable,
    comparison_renderable,
    format_range,
    format_seconds,
)


def _text(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


def test_format_seconds_scales_units():
    assert format_seconds(2.5) == "2.5 s"
    assert format_seconds(0.0125) == "12.5 ms"
    assert format_seconds(3.2e-6) == "3.2 µs"
    assert format_seconds(5e-8) == "50 ns"
    assert format_seconds(None) == "?"


def test_format_range_uses_one_unit_and_marks_unknown_ends():
    assert format_range(0.0121, 0.0135) == "12.1-13.5 ms"
    assert format_range(0.0121, None) == "12.1-? ms"


def test_bench_renderable_shows_every_stage_and_warnings():
    doc = synthetic_result({"model": lognormal(0.01, sigma=0.3), "end_to_end": lognormal(0.012)})
    text = _text(bench_renderable(doc))
    assert "model" in text and "end_to_end" in text and "noisy" in text and "warning:" in text


def test_comparison_renderable_shows_verdict_and_ranked_suspects():
    base = synthetic_result({"model": lognormal(0.01), "end_to_end": lognormal(0.012)})
    cur = synthetic_result({"model": lognormal(0.02, seed=3), "end_to_end": lognormal(0.022, seed=4)})
    doc = compare_bench(cur, base).to_json()
    doc["attribution"] = [{"category": "runtime", "name": "torch.num_threads", "a": 2, "b": 1, "risk": "medium",
                           "reason": "intra-op threads changed", "stages": ["model"],
                           "touches_slower_stage": ["model"]}]
    text = _text(comparison_renderable(doc))
    assert text.startswith("REGRESSION")
    assert "1. [model] medium runtime:torch.num_threads 2 -> 1" in text
