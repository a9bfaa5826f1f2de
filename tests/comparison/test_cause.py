"""probable_cause on hand-built records: each rule needs its two pieces of evidence.

The MiniLM tests (test_verify_minilm.py) check the same rules on a real model with a live
B; these pin each rule, and what happens when one piece of evidence is missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from parity.comparison import compare
from parity.comparison.cause import probable_cause
from parity.comparison.result import PASS, VerifyResult
from parity.env.risk import package_risk

Make = Callable[..., Path]
X = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
IDS = torch.tensor([[101, 7592, 2088, 102], [101, 2023, 102, 0]])
WEIGHTS = {"emb.weight": "h0", "enc.0.weight": "h1", "enc.1.weight": "h2"}


def _layers(delta: float = 0.0) -> dict[str, torch.Tensor]:
    return {"emb#0/out": X.clone(), "enc.0#0/out": X * 2 + delta, "enc.1#0/out": X * 3 + 2 * delta,
            "#0/out": X * 4 + 3 * delta}


def _keys(cause: dict) -> set[str]:
    return set(cause)


def test_nothing_diverged_means_no_cause(make_record: Make) -> None:
    r = compare(make_record("a", _layers(), params=WEIGHTS), make_record("b", _layers(), params=WEIGHTS))
    assert r.verdict == PASS and r.probable_cause is None and r.to_json()["probable_cause"] is None


def test_changed_tokenizer_config_and_preprocess_divergence_name_the_file(make_record: Make) -> None:
    files_a = {"/a/m/tokenizer.json": "t1", "/a/m/tokenizer_config.json": "c1", "/a/m/model.safetensors": "w"}
    files_b = {"/b/m/tokenizer.json": "t2", "/b/m/tokenizer_config.json": "c2", "/b/m/model.safetensors": "w"}
    ids_b = IDS.clone()
    ids_b[0, 1] = 100  # [UNK]: a cased word the lower-casing tokenizer knew
    a = make_record("a", _layers(), stages={"0/preprocess/input_ids": IDS}, files=files_a, params=WEIGHTS)
    b = make_record("b", _layers(1e-3), stages={"0/preprocess/input_ids": ids_b}, files=files_b, params=WEIGHTS)
    cause = compare(a, b).probable_cause
    assert cause is not None and _keys(cause) >= {"kind", "summary", "subject", "evidence", "confidence", "checked"}
    assert cause["kind"] == "asset" and cause["subject"].endswith("tokenizer_config.json")
    assert cause["confidence"] == "high" and "tokenizer_config.json" in cause["summary"]
    assert any("preprocess stage diverges: input_ids" in e for e in cause["evidence"])
    assert any(c.startswith("asset files: 3 compared by sha256, 2 differ") for c in cause["checked"])


def test_changed_weight_file_alone_does_not_explain_a_preprocess_divergence(make_record: Make) -> None:
    a = make_record("a", _layers(), stages={"0/preprocess/input_ids": IDS}, files={"/a/model.safetensors": "w1"})
    b = make_record("b", _layers(), stages={"0/preprocess/input_ids": IDS + 1}, files={"/b/model.safetensors": "w2"})
    cause = compare(a, b).probable_cause
    assert cause is not None and cause["kind"] == "unexplained" and cause["subject"] == "preprocess"


def test_changed_weight_owned_by_the_first_divergent_layer_is_named(make_record: Make) -> None:
    changed = {**WEIGHTS, "enc.0.weight": "XX"}
    r = compare(make_record("a", _layers(), params=WEIGHTS), make_record("b", _layers(1e-3), params=changed))
    cause = r.probable_cause
    assert cause is not None and cause["kind"] == "weight" and cause["subject"] == "enc.0.weight"
    # compare has no live model: the layer owns the weight, but nothing was replayed
    assert cause["confidence"] == "medium"
    assert any("introduced vs inherited: not checked" in c for c in cause["checked"])
    assert any(c.startswith("weights: 3 tensors compared by hash, 1 differ") for c in cause["checked"])


def test_changed_weight_outside_the_divergent_layer_is_not_the_cause(make_record: Make) -> None:
    changed = {**WEIGHTS, "emb.weight": "XX"}  # emb#0/out itself matches: that weight did not do it
    cause = compare(make_record("a", _layers(), params=WEIGHTS), make_record("b", _layers(1e-3), params=changed)
                    ).probable_cause
    assert cause is not None and cause["kind"] == "unexplained" and cause["subject"] == "enc.0#0/out"


def test_changed_weight_within_tolerance_is_still_named(make_record: Make) -> None:
    changed = {**WEIGHTS, "enc.1.weight": "XX"}
    cause = compare(make_record("a", _layers(), params=WEIGHTS), make_record("b", _layers(), params=changed)
                    ).probable_cause
    assert cause is not None and cause["kind"] == "weight" and cause["subject"] == "enc.1.weight"
    assert "within tolerance" in cause["summary"]


def test_module_in_training_mode_around_the_first_divergent_layer_means_eval(make_record: Make) -> None:
    a = make_record("a", _layers(), params=WEIGHTS, runtime={"model": {"training_modules": []}})
    b = make_record("b", _layers(1e-3), params=WEIGHTS, runtime={"model": {"training_modules": ["enc"]}})
    cause = compare(a, b).probable_cause
    assert cause is not None and cause["kind"] == "eval_mode" and "model.eval()" in cause["summary"]
    assert cause["subject"] == "enc.0" and cause["confidence"] == "medium"  # inside it, not a Dropout


def test_package_touching_the_first_divergent_stage_is_named(make_record: Make) -> None:
    a = make_record("a", _layers(), stages={"0/preprocess/input_ids": IDS}, params=WEIGHTS,
                    packages={"tokenizers": "0.19.1", "torch": "2.13.0"})
    b = make_record("b", _layers(), stages={"0/preprocess/input_ids": IDS + 1}, params=WEIGHTS,
                    packages={"tokenizers": "0.20.0", "torch": "2.13.0"})
    cause = compare(a, b).probable_cause
    assert cause is not None and cause["kind"] == "package" and cause["subject"] == "tokenizers"
    assert "0.19.1 -> 0.20.0" in cause["summary"] and "preprocess" in cause["summary"]
    assert cause["confidence"] == "medium" and cause["fix"].startswith("install tokenizers==0.19.1 in B")


def _env_item(name: str, a: str, b: str) -> dict:
    """A package item as the environment diff makes it: risk and stages from the risk table."""
    risk = package_risk(name)
    return {"category": "package", "name": name, "a": a, "b": b, "change": "changed", "risk": risk.level,
            "reason": risk.reason, "stages": list(risk.stages)}


def _preprocess_diverges(items: list[dict]) -> VerifyResult:
    return VerifyResult(a={"record": "golden/"}, b={"record": None, "target": "serving.py:build"}, capture="stats",
                        env_diff={"identical": False, "items": items}, first_divergent_stage="preprocess",
                        stages=[{"stage": "preprocess", "status": "diverged", "rows": []}])


def test_package_by_risk_alone_names_the_changed_packages_the_risk_table_does_not_know() -> None:
    """numpy touches preprocess by the risk table; textprep, which the target's preprocess
    imports, is unknown to it: the cause must not blame numpy alone, and points at bisect."""
    items = [_env_item("numpy", "2.4.6", "2.3.5"), _env_item("textprep", "1.0", "1.1")]
    cause = probable_cause(_preprocess_diverges(items))
    assert cause is not None and cause["kind"] == "package" and cause["subject"] == "numpy"
    assert cause["summary"] == ("a package change: numpy (high-risk, touches the preprocess stage) "
                                "or 1 other changed package(s)"), cause["summary"]
    assert "also changed, not in the risk table: textprep 1.0 -> 1.1" in cause["evidence"], cause["evidence"]
    assert cause["confidence"] == "low"
    assert cause["fix"].startswith("run `parity bisect --good golden --bad B` to find which one"), cause["fix"]
    assert "parity snapshot -o B.json" in cause["fix"] and "install" not in cause["fix"]


def test_package_by_risk_alone_among_packages_the_table_rules_out_keeps_its_fix() -> None:
    """threadpoolctl is in the risk table and does not touch preprocess: numpy alone is named."""
    items = [_env_item("numpy", "2.4.6", "2.3.5"), _env_item("threadpoolctl", "3.5", "3.6")]
    cause = probable_cause(_preprocess_diverges(items))
    assert cause is not None and cause["summary"].startswith("package numpy 2.4.6 -> 2.3.5: it touches")
    assert cause["confidence"] == "medium" and cause["fix"].startswith("install numpy==2.4.6 in B")
    assert not any("not in the risk table" in e for e in cause["evidence"])


def test_unexplained_names_the_first_divergent_layer_and_what_was_checked(make_record: Make) -> None:
    r = compare(make_record("a", _layers(), params=WEIGHTS), make_record("b", _layers(1e-3), params=WEIGHTS))
    cause = r.probable_cause
    assert cause is not None and cause["kind"] == "unexplained" and cause["subject"] == "enc.0#0/out"
    assert cause["confidence"] == "low" and "enc.0#0/out" in cause["summary"]
    assert len(cause["checked"]) >= 5
    json.dumps(r.to_json(), allow_nan=False)


def test_weights_unknown_is_stated_among_what_was_checked(make_record: Make) -> None:
    cause = compare(make_record("a", _layers()), make_record("b", _layers(1e-3))).probable_cause
    assert cause is not None and "weights not compared (record lists none)" in cause["checked"]


def test_only_a_package_the_risk_table_does_not_know_changed_points_at_bisect() -> None:
    """textprep alone changed (the target's preprocess imports it): not "unexplained"."""
    cause = probable_cause(_preprocess_diverges([_env_item("textprep", "1.0", "1.1")]))
    assert cause is not None and cause["kind"] == "package" and cause["subject"] == "textprep"
    assert "textprep 1.0 -> 1.1" in cause["summary"] and cause["confidence"] == "low"
    assert cause["fix"].startswith("run `parity bisect --good golden --bad B`"), cause["fix"]


def test_an_environment_variable_left_as_the_only_difference_is_named() -> None:
    item = {"category": "env_var", "name": "MODEL_SCALE", "a": None, "b": "1.5", "change": "added",
            "risk": "low", "reason": "", "stages": []}
    cause = probable_cause(_preprocess_diverges([item]))
    assert cause is not None and cause["kind"] == "environment" and cause["subject"] == "MODEL_SCALE"
    assert cause["confidence"] == "low" and "only kind of difference left" in cause["summary"]
    assert cause["fix"] == "set MODEL_SCALE in B as in A and verify again"


def test_no_environment_difference_stays_unexplained() -> None:
    cause = probable_cause(_preprocess_diverges([]))
    assert cause is not None and cause["kind"] == "unexplained"
