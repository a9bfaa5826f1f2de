"""compare() on hand-built records: each test changes one thing between A and B."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from parity.comparison import compare
from parity.comparison.result import FAIL, PASS, SCHEMA, WARN

Make = Callable[..., Path]
X = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7


def _layers(delta: float = 0.0) -> dict[str, torch.Tensor]:
    return {"emb#0/out": X.clone(), "enc.0#0/out": X * 2 + delta, "enc.1#0/out": X * 3 + 2 * delta, "#0/out": X * 4 + 3 * delta}


def test_same_record_passes_with_zero_mismatches(make_record: Make) -> None:
    r = compare(make_record("a", _layers()), make_record("b", _layers()))
    assert r.verdict == PASS and r.exit_code == 0
    assert all(layer["status"] == "match" and layer["metrics"]["mismatches"] == 0 for layer in r.layers)
    assert r.first_divergent_layer is None and r.first_divergent_stage is None


def test_json_has_the_documented_shape(make_record: Make) -> None:
    params = {"enc.0.weight": "h1"}
    doc = compare(make_record("a", _layers(), params=params), make_record("b", _layers(1e-2), params=params)).to_json()
    json.dumps(doc, allow_nan=False)  # strict JSON: no NaN/Infinity leaks
    assert doc["schema"] == SCHEMA
    for key in ("verdict", "reason", "a", "b", "env_diff", "assets", "runtime", "stages", "first_divergent_stage",
                "layers", "first_divergent_layer", "first_introducing_layer", "only_a", "only_b", "predictions",
                "performance", "tolerances", "probable_cause", "api_changes"):
        assert key in doc, key
    assert set(doc["probable_cause"]) >= {"kind", "summary", "subject", "evidence", "confidence", "checked"}
    layer = doc["layers"][1]
    assert set(layer) >= {"key", "module", "type", "shape", "dtype", "status", "metrics", "atol", "rtol",
                          "noise_floor", "introduced", "contains"}
    assert set(layer["metrics"]) >= {"max_abs", "mean_abs", "rel_l2", "cosine", "mismatch_frac"}
    assert set(doc["assets"]) == {"files", "params", "weights_compared"}


def test_first_divergent_layer_in_execution_order_with_error_growth(make_record: Make) -> None:
    r = compare(make_record("a", _layers()), make_record("b", _layers(1e-3)))
    assert r.verdict == FAIL and r.exit_code == 1
    assert r.first_divergent_layer == "enc.0#0/out"
    assert [g["key"] for g in r.error_growth] == ["enc.0#0/out", "enc.1#0/out", "#0/out"]
    assert r.error_growth[2]["max_abs"] > r.error_growth[0]["max_abs"]
    assert r.first_introducing_layer is None and any("live model" in n for n in r.notes)
    assert "enc.0#0/out" in r.reason


def test_divergence_in_a_later_batch_is_found_and_merged(make_record: Make) -> None:
    a = make_record("a", [_layers(), _layers()])
    b = make_record("b", [_layers(), _layers(1e-3)])
    r = compare(a, b)
    row = next(x for x in r.layers if x["key"] == "enc.0#0/out")
    assert row["status"] == "diverged" and row["first_bad_batch"] == 1
    assert row["metrics"]["numel"] == 2 * X.numel()


def test_token_id_rows_are_shown_at_preprocess(make_record: Make) -> None:
    ids_a = torch.tensor([[101, 7592, 2088, 102], [101, 2023, 102, 0]])
    ids_b = ids_a.clone()
    ids_b[1, 1] = 1996
    a = make_record("a", _layers(), stages={"0/preprocess/input_ids": ids_a})
    b = make_record("b", _layers(), stages={"0/preprocess/input_ids": ids_b})
    r = compare(a, b)
    assert r.verdict == FAIL and r.first_divergent_stage == "preprocess"
    stage = next(s for s in r.stages if s["stage"] == "preprocess")
    assert stage["suspects"] == []
    (row,) = stage["rows"]
    assert row == {"batch": 0, "name": "input_ids", "row": 1, "positions": [1], "a": [101, 2023, 102, 0],
                   "b": [101, 1996, 102, 0]}


def test_other_architecture_fails_listing_missing_layers(make_record: Make) -> None:
    other = {"conv#0/out": X.clone(), "#0/out": X * 4}
    r = compare(make_record("a", _layers()), make_record("b", other))
    assert r.verdict == FAIL and r.exit_code == 1
    assert r.only_a == ["emb#0/out", "enc.0#0/out", "enc.1#0/out"] and r.only_b == ["conv#0/out"]
    assert "do not exist in B" in r.reason


def test_extra_layers_in_b_only_warn(make_record: Make) -> None:
    more = {**_layers(), "extra#0/out": X.clone()}
    r = compare(make_record("a", _layers()), make_record("b", more))
    assert r.verdict == WARN and r.exit_code == 0 and r.only_b == ["extra#0/out"]


def test_wrapper_prefixes_match(make_record: Make) -> None:
    wrapped = {f"module._orig_mod.{k}" if not k.startswith("#") else f"module{k}": v for k, v in _layers().items()}
    r = compare(make_record("a", _layers()), make_record("b", wrapped))
    assert r.verdict == PASS, r.reason


def test_environment_drift_inside_tolerance_is_pass_with_warnings(make_record: Make) -> None:
    a = make_record("a", _layers(), packages={"numpy": "1.26.4", "torch": "2.13.0"})
    b = make_record("b", _layers(), packages={"numpy": "2.1.0", "torch": "2.13.0"})
    r = compare(a, b)
    assert r.verdict == WARN and r.exit_code == 0
    assert [(i["name"], i["a"], i["b"]) for i in r.env_diff["items"]] == [("numpy", "1.26.4", "2.1.0")]


def test_other_package_index_is_listed_but_no_warning(make_record: Make) -> None:
    # Where pip fetches from matters to a rebuild, not to the model that runs: listed, no warning.
    from parity.env import snapshot

    env_a = snapshot()
    env_b = json.loads(json.dumps(env_a))
    env_b["package_sources"]["pip"]["index_url"] = {"value": "file:///mirror/simple", "source": "PIP_INDEX_URL"}
    r = compare(make_record("a", _layers(), env=env_a), make_record("b", _layers(), env=env_b))
    assert [i["category"] for i in r.env_diff["items"]] == ["package_source"]
    assert r.verdict == PASS, r.reason


def test_changed_asset_file_is_named_across_different_locations(make_record: Make) -> None:
    files_a = {"/research/model/tokenizer_config.json": "aa", "/research/model/model.safetensors": "cc"}
    files_b = {"/srv/copy/model/tokenizer_config.json": "bb", "/srv/copy/model/model.safetensors": "cc"}
    r = compare(make_record("a", _layers(), files=files_a), make_record("b", _layers(), files=files_b))
    (f,) = r.assets["files"]
    assert f["path"] == "/research/model/tokenizer_config.json" and f["change"] == "changed"
    assert f["b_path"] == "/srv/copy/model/tokenizer_config.json"
    assert r.verdict == WARN  # outputs still equal: the file change is a warning


def test_changed_weight_is_named_and_fails(make_record: Make) -> None:
    params_a = {"enc.0.weight": "h1", "enc.1.weight": "h2"}
    params_b = {"module.enc.0.weight": "h1", "module.enc.1.weight": "XX"}
    r = compare(make_record("a", _layers(), params=params_a), make_record("b", _layers(), params=params_b))
    assert [p["name"] for p in r.assets["params"]] == ["enc.1.weight"]
    assert r.verdict == FAIL and "enc.1.weight" in r.reason


def test_artifact_without_named_weights_is_not_every_weight_removed(make_record: Make) -> None:
    # An ONNX or AOTInductor artifact in B exposes no parameters: weights are unknown there.
    a = make_record("a", _layers(), params={"enc.0.weight": "h1", "enc.1.weight": "h2"})
    r = compare(a, make_record("b", _layers(), params={}))
    assert r.assets["params"] == [] and r.assets["weights_compared"] is False
    assert r.verdict == PASS, r.reason
    assert any("no named weights" in n for n in r.notes)


def test_training_mode_is_a_runtime_error_finding(make_record: Make) -> None:
    state_a = {"model": {"training_modules": [], "threads": 2}}
    state_b = {"model": {"training_modules": ["", "enc.0", "enc.0.dropout"], "threads": 2}}
    r = compare(make_record("a", _layers(), runtime=state_a), make_record("b", _layers(), runtime=state_b))
    (finding,) = r.runtime
    assert finding["severity"] == "error" and finding["code"] == "training_mode"
    assert "enc.0.dropout" in finding["message"] and "eval()" in finding["message"]
    assert r.verdict == FAIL


def test_thread_count_alone_passes(make_record: Make) -> None:
    a = make_record("a", _layers(), runtime={"model": {"threads": 1}})
    b = make_record("b", _layers(), runtime={"model": {"threads": 2}})
    r = compare(a, b)
    assert r.verdict == PASS and r.runtime[0]["severity"] == "info"


def test_parameter_dtype_change_is_an_error(make_record: Make) -> None:
    a = make_record("a", _layers(), runtime={"model": {"parameters": {"enc.0.weight": {"dtype": "float32", "device": "cpu"}}}})
    b = make_record("b", _layers(), runtime={"model": {"parameters": {"enc.0.weight": {"dtype": "float16", "device": "cpu"}}}})
    r = compare(a, b)
    assert any(f["code"] == "parameters_dtype" and "enc.0.weight" in f["message"] for f in r.runtime)
    assert r.verdict == FAIL


def test_noise_floor_raises_the_tolerance(make_record: Make, tmp_path: Path) -> None:
    a = make_record("a", _layers())
    layers_json = a / "layers.json"
    entries = json.loads(layers_json.read_text())
    for e in entries:
        e["noise_floor"] = 1e-2
    layers_json.write_text(json.dumps(entries))
    from parity.records.format import finalize_manifest

    manifest = json.loads((a / "manifest.json").read_text())
    finalize_manifest(a, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})
    r = compare(a, make_record("b", _layers(1e-3)))
    assert r.verdict == PASS, r.reason
    assert r.layers[1]["atol"] == pytest.approx(1e-2) and r.layers[1]["noise_floor"] == pytest.approx(1e-2)


def test_caller_tolerances_and_overrides(make_record: Make) -> None:
    a, b = make_record("a", _layers()), make_record("b", _layers(1e-3))
    assert compare(a, b, atol=1e-2).verdict == PASS
    r = compare(a, b, overrides={"enc.0*": {"atol": 1e-2}})
    assert r.first_divergent_layer == "enc.1#0/out"


def test_stats_capture_compares_samples_and_stats(make_record: Make) -> None:
    a = make_record("a", _layers(), capture="stats")
    assert compare(a, make_record("b", _layers(), capture="stats")).verdict == PASS
    r = compare(a, make_record("c", _layers(1e-3), capture="stats"))
    assert r.first_divergent_layer == "enc.0#0/out"


def test_embedding_predictions_report_cosine(make_record: Make) -> None:
    emb = torch.randn(4, 64)
    a = make_record("a", _layers(), stages={"0/postprocess/out": emb})
    b = make_record("b", _layers(), stages={"0/postprocess/out": emb + 1e-3})
    p = compare(a, b).predictions
    assert p is not None and p["kind"] == "embedding" and 0.99 < p["cosine"] <= 1.0
    assert p["max_abs"] == pytest.approx(1e-3, rel=1e-2)


def test_logits_predictions_report_argmax_and_topk(make_record: Make) -> None:
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    flipped = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0]])
    a = make_record("a", _layers(), stages={"0/model/logits": logits})
    b = make_record("b", _layers(), stages={"0/model/logits": flipped})
    p = compare(a, b).predictions
    assert p is not None and p["kind"] == "logits" and p["argmax_agreement"] == 0.5 and p["topk_overlap"] == 1.0


def test_first_divergent_stage_lists_what_can_explain_it(make_record: Make) -> None:
    ids = torch.tensor([[101, 7592, 102]])
    a = make_record("a", _layers(), stages={"0/preprocess/input_ids": ids}, files={"m/tokenizer.json": "aa"},
                    packages={"tokenizers": "0.19.1"})
    b = make_record("b", _layers(), stages={"0/preprocess/input_ids": ids + 1}, files={"m/tokenizer.json": "bb"},
                    packages={"tokenizers": "0.20.0"})
    stage = next(s for s in compare(a, b).stages if s["stage"] == "preprocess")
    assert stage["suspects"][0] == "asset m/tokenizer.json (changed)"
    assert any("tokenizers 0.19.1 -> 0.20.0" in s for s in stage["suspects"])


def test_pass_line_states_the_highest_risk_it_lists() -> None:
    # A runtime item (judged as runtime state, so no warning) that is high-risk: the PASS
    # sentence used to call every listed item "low-risk".
    from parity.comparison.result import VerifyResult, decide_verdict

    blas = {"category": "runtime", "name": "threadpool.blas:openblas:libscipy_openblas.version", "a": "0.3.30",
            "b": "0.3.31", "risk": "high", "stages": ["model"]}
    low = {"category": "env_var", "name": "LANG", "a": "C", "b": "C.UTF-8", "risk": "low", "stages": []}
    r = VerifyResult(a={}, b={}, capture="stats", env_diff={"identical": False, "items": [low, blas]},
                     assets={"files": [], "params": [], "weights_compared": True})
    decide_verdict(r)
    assert r.verdict == PASS
    assert "low-risk" not in r.reason
    assert "2 environment difference(s) listed, highest risk high: threadpool.blas:openblas" in r.reason
    r.env_diff = {"identical": False, "items": [low]}
    decide_verdict(r)
    assert "1 low-risk environment difference(s) listed" in r.reason


def test_record_that_lists_no_weights_is_weights_unknown_never_same(make_record: Make, run_cli) -> None:
    a, b = make_record("a", _layers()), make_record("b", _layers())  # assets.json: "params": {}
    r = compare(a, b)
    assert r.assets["weights_compared"] is False and r.assets["params"] == []
    assert any(n.startswith("weights not compared (record lists none)") for n in r.notes), r.notes
    assert "same environment and assets" not in r.reason
    assert "weights not compared (record lists none)" in r.reason
    code, out, _err = run_cli("compare", a, b)
    assert code == 0 and "weights not compared (record lists none)" in out
    assert "Assets and weights: same as A" not in out
