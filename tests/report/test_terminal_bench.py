"""The bench reports: units scaled for humans, every stage and suspect shown."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

from parity.benchmark import compare_bench
from parity.benchmark.protocol import BenchConfig, BenchResult, Measurement
from parity.report.terminal import bench_comparison_report, bench_report


def _text(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=120, color_system=None).print(renderable)
    return out.getvalue()


def _result(samples: dict) -> dict:
    """A parity.bench/1 document with the given raw samples (through the real BenchResult)."""
    measurement = Measurement(samples={k: list(v) for k, v in samples.items()},
                              cold_first_call={k: float(v[0]) for k, v in samples.items()},
                              warmup_calls=3, settled=True, machine=None)
    return BenchResult(target="serve.py:build", model={"name": "m", "class": "torch.nn.Linear", "parameters": 10,
                                                       "kind": "callable"},
                       config=BenchConfig(batch_size=8, threads=None, min_time=0.1, min_iters=5), items=8,
                       measurement=measurement, threads={"requested": None}, env=None).to_json()


def _lognormal(median: float, sigma: float = 0.03, seed: int = 0) -> list:
    return list(median * np.random.default_rng(seed).lognormal(0.0, sigma, size=200))


def test_bench_report_shows_every_stage_and_warnings():
    doc = _result({"model": _lognormal(0.01, sigma=0.3), "end_to_end": _lognormal(0.012)})
    doc["peak_rss_bytes"] = 512 * 10**6
    text = _text(bench_report(doc))
    assert "model" in text and "end_to_end" in text and "noisy" in text and "warning:" in text
    assert "peak RSS 512 MB" in text and " ms" in text


def test_comparison_report_shows_verdict_ratios_and_ranked_suspects():
    base = _result({"model": _lognormal(0.01), "end_to_end": _lognormal(0.012)})
    cur = _result({"model": _lognormal(0.02, seed=3), "end_to_end": _lognormal(0.022, seed=4)})
    doc = compare_bench(cur, base).to_json()
    doc["attribution"] = [{"category": "runtime", "name": "torch.num_threads", "a": 2, "b": 1, "risk": "medium",
                           "reason": "intra-op threads changed", "stages": ["model"],
                           "touches_slower_stage": ["model"]}]
    text = _text(bench_comparison_report(doc))
    assert text.startswith("REGRESSION")
    assert "1. [model] medium runtime:torch.num_threads 2 -> 1" in text
    model = next(s for s in doc["stages"] if s["stage"] == "model")
    assert f"{model['ratio']:.2f}x ({model['ci'][0]:.2f}-{model['ci'][1]:.2f})" in text  # ratios: two decimals
