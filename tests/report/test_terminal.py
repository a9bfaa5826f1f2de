"""The rich terminal report: verdict first, then each section that has something to say."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from parity.report.terminal import render_verify


def _render(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    render_verify(doc, Console(file=buf, width=160, color_system=None))
    return buf.getvalue()


FAIL_DOC: dict[str, Any] = {
    "schema": "parity.verify/1", "verdict": "FAIL", "reason": "The preprocess stage diverges.",
    "warnings": ["The environment differs in 1 place(s)."], "a": {"record": "golden/"},
    "b": {"record": None, "target": "serving.py:build"}, "capture": "full",
    "env_diff": {"identical": False, "items": [{"risk": "high", "category": "package", "name": "tokenizers",
                                                 "a": "0.19.1", "b": "0.20.0", "reason": "tokenization"}]},
    "assets": {"files": [{"path": "model/tokenizer.json", "change": "changed", "a": "ab" * 32, "b": "cd" * 32}],
               "params": [{"name": "encoder.layer.3.attention.self.query.weight", "change": "changed",
                           "a_hash": "1" * 64, "b_hash": "2" * 64, "max_abs": None}]},
    "runtime": [{"severity": "error", "code": "training_mode", "message": "2 submodule(s) in training mode in B",
                 "where": "encoder"}],
    "stages": [{"stage": "preprocess", "status": "diverged", "metrics": {"max_abs": 3.0, "rel_l2": 0.1,
                                                                         "mismatch_frac": 0.2},
                "rows": [{"batch": 0, "name": "input_ids", "row": 1, "positions": [2], "a": [101, 7, 8],
                          "b": [101, 7, 9]}]}],
    "first_divergent_stage": "preprocess",
    "layers": [{"key": "encoder.layer.3#0/out/0", "status": "diverged", "type": "BertLayer", "atol": 1e-5,
                "rtol": 1e-4, "metrics": {"max_abs": 1e-3, "mean_abs": 2e-4, "rel_l2": 1e-4, "cosine": 0.99999,
                                          "mismatch_frac": 0.25}}],
    "first_divergent_layer": "encoder.layer.3#0/out/0", "first_introducing_layer": "encoder.layer.3.attention#0/out/0",
    "error_growth": [{"key": "encoder.layer.3#0/out/0", "status": "diverged", "max_abs": 1e-3, "rel_l2": 1e-4,
                      "introduced": True},
                     {"key": "encoder.layer.4#0/out/0", "status": "diverged", "max_abs": 2e-3, "rel_l2": 3e-4,
                      "introduced": False}],
    "only_a": ["pooler#0/out"], "only_b": [],
    "predictions": {"stage": "postprocess", "output": "out", "kind": "embedding", "cosine": 0.99991,
                    "max_abs": 1e-3, "rel_l2": 1e-4},
    "performance": None, "tolerances": {}, "notes": ["replayed the first 200 divergent layers only"],
}


def test_verdict_comes_first_then_sections_in_order() -> None:
    out = _render(FAIL_DOC)
    assert out.index("FAIL") < out.index("Environment") < out.index("Assets") < out.index("Runtime")
    assert out.index("Runtime") < out.index("Stages") < out.index("Layers") < out.index("Predictions")


def test_failure_details_are_named() -> None:
    out = _render(FAIL_DOC)
    for needle in ("tokenizers", "0.20.0", "model/tokenizer.json", "encoder.layer.3.attention.self.query.weight",
                   "training mode", "input_ids", "101 7 9", "introduces", "encoder.layer.3.attention#0/out/0",
                   "inherited", "only in A (1): pooler#0/out", "cosine 0.999910", "note: replayed",
                   "(BertLayer): max abs 0.001, mean abs 2.00e-04", "cosine 0.999990", "mismatch 0.25"):
        assert needle in out, needle


def test_pass_report_is_short_and_says_same() -> None:
    doc = {"verdict": "PASS", "reason": "B reproduces A.", "a": {}, "b": {}, "capture": "outputs",
           "env_diff": {"items": []}, "assets": {"files": [], "params": []}, "runtime": []}
    out = _render(doc)
    assert "PASS" in out and out.count("same as A") == 3 and len(out.splitlines()) < 15


def test_markup_in_values_is_not_interpreted() -> None:
    doc = dict(FAIL_DOC, reason="layer [bold]x[/bold] differs")
    assert "[bold]x[/bold]" in _render(doc)


def test_performance_section_shows_stage_ratios() -> None:
    perf = {"verdict": "regression", "reason": "model is 1.40x the baseline time.", "regression": True,
            "stages": [{"stage": "model", "baseline_p50": 0.010, "current_p50": 0.014, "ratio": 1.4,
                        "ci": [1.3, 1.5], "verdict": "slower"}]}
    out = _render(dict(FAIL_DOC, performance=perf))
    assert "Performance" in out and "1.40x (1.30-1.50)" in out and "14 ms" in out and "1.40x the baseline" in out
