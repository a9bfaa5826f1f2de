"""The rich terminal report: verdict first, then each section that has something to say."""

from __future__ import annotations

import io
import re
from typing import Any

from rich.console import Console

from parity.report.terminal import verify_report


def _render(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    Console(file=buf, width=160, color_system=None).print(verify_report(doc))
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
    "layers": [{"key": "encoder.layer.3.attention#0/out/0", "module": "encoder.layer.3.attention",
                "status": "diverged", "type": "BertAttention", "introduced": True,
                "metrics": {"max_abs": 1e-3, "rel_l2": 1e-4}},
               {"key": "encoder.layer.3#0/out/0", "status": "diverged", "type": "BertLayer", "atol": 1e-5,
                "rtol": 1e-4, "metrics": {"max_abs": 1e-3, "mean_abs": 2e-4, "rel_l2": 1e-4, "cosine": 0.99999,
                                          "mismatch_frac": 0.25}},
               {"key": "encoder.layer.4#0/out/0", "module": "encoder.layer.4", "status": "diverged",
                "type": "BertLayer", "introduced": False, "metrics": {"max_abs": 2e-3, "rel_l2": 3e-4}}],
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


CAUSE = {"kind": "asset", "summary": "tokenizer_config.json changed between A and B, and B's preprocess diverges from it",
         "subject": "model/tokenizer_config.json", "confidence": "high", "fix": "use A's tokenizer_config.json in B",
         "evidence": ["asset model/tokenizer_config.json changed (sha256 ab -> cd)",
                      "the preprocess stage diverges: input_ids differ in 1 row(s)"],
         "checked": ["asset files: 7 compared by sha256, 2 differ", "stages: first divergent preprocess"]}


def test_probable_cause_is_the_first_line_before_the_symptoms() -> None:
    out = _render(dict(FAIL_DOC, probable_cause=CAUSE))
    first = out.lstrip().splitlines()[0]
    assert first.startswith("Probable cause: tokenizer_config.json changed") and "(confidence: high)" in first
    assert out.index("Probable cause") < out.index("FAIL") < out.index("warning:") < out.index("Stages")
    for needle in ("evidence: asset model/tokenizer_config.json changed", "fix: use A's tokenizer_config.json",
                   "checked: asset files: 7 compared by sha256, 2 differ; stages: first divergent preprocess"):
        assert needle in out, needle
    assert "Probable cause" not in _render(FAIL_DOC)  # older results without the field still render


def _layer(i: int, status: str) -> dict[str, Any]:
    return {"key": f"encoder.layer.{i}#0/out", "module": f"encoder.layer.{i}", "type": "BertLayer",
            "status": status, "introduced": False if status == "diverged" else None,
            "metrics": {"max_abs": 1e-3 * (i + 1), "rel_l2": 1e-4}}


def test_counts_agree_between_headline_table_and_and_n_more() -> None:
    layers = [_layer(i, "match") for i in range(16)] + [_layer(i, "diverged") for i in range(16, 60)]
    growth = [{"key": x["key"], "status": x["status"], "max_abs": 1e-3, "rel_l2": 1e-4} for x in layers[16:29]]
    out = _render(dict(FAIL_DOC, layers=layers, error_growth=growth, first_divergent_layer=layers[16]["key"],
                       first_introducing_layer=None))
    assert "60 compared, 44 diverged" in out
    section = out[out.index("Layers (A's"):out.index("Predictions")]
    shown = sum(1 for x in layers if x["status"] == "diverged" and f"{x['key']} " in section)
    assert shown == 10 and "… and 34 more diverged layer(s)" in section
    assert "and 3 more" not in section


def test_a_module_around_the_introducing_one_contains_it() -> None:
    dense = "encoder.layer.3.intermediate.dense#0/out"
    layers = [
        {"key": dense, "module": "encoder.layer.3.intermediate.dense", "type": "Linear", "status": "diverged",
         "introduced": True, "contains": None, "metrics": {"max_abs": 0.1}},
        {"key": "encoder.layer.3.intermediate#0/out", "module": "encoder.layer.3.intermediate", "type": "BertIntermediate",
         "status": "diverged", "introduced": None, "contains": dense, "metrics": {"max_abs": 0.1}},
        {"key": "encoder.layer.3#0/out/0", "module": "encoder.layer.3", "type": "BertLayer", "status": "diverged",
         "introduced": None, "contains": dense, "metrics": {"max_abs": 0.1}},
    ]
    out = _render(dict(FAIL_DOC, layers=layers, first_divergent_layer=dense, first_introducing_layer=dense))
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("encoder.layer.3")}
    assert "introduces" in rows[dense]
    assert "contains dense#0/out" in rows["encoder.layer.3.intermediate#0/out"]
    assert "contains intermediate.dense#0/out" in rows["encoder.layer.3#0/out/0"]
    assert "introduces" not in rows["encoder.layer.3#0/out/0"] + rows["encoder.layer.3.intermediate#0/out"]


def test_control_characters_from_a_record_never_reach_the_terminal() -> None:
    clear, link, csi = "x\x1b[2J", "\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\", "z\x9b2J\x07\r"
    doc = dict(FAIL_DOC, first_divergent_layer=f"{clear}#0/out", notes=[f"{link}: replay failed"],
               reason=f"Layer outputs diverge, first at {clear}#0/out", only_a=[csi],
               layers=[dict(_layer(1, "diverged"), key=f"{clear}#0/out", type=link)],
               probable_cause=dict(CAUSE, summary=f"unexplained: {csi}", evidence=[link]))
    buf = io.StringIO()
    Console(file=buf, width=160, force_terminal=True, color_system="truecolor").print(verify_report(doc))
    out = buf.getvalue()
    # rich's own colours are ESC[...m sequences; nothing else may be a control sequence
    assert re.sub(r"\x1b\[[0-9;]*m", "", out).count("\x1b") == 0
    assert "\x9b" not in out and "\x07" not in out and "\r" not in out
    plain = _render(doc)
    assert "\x1b" not in plain and "x\\x1b[2J#0/out" in plain and "z\\x9b2J" in plain
