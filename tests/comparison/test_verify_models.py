"""verify() end to end on the small models of tests/models.py: record A, re-run B, compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from record_targets import pipeline_file, recorded_target

from parity.comparison import verify
from parity.comparison.result import FAIL, PASS
from parity.records import record


def _inputs(n: int = 4, width: int = 8) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(width, generator=g) for _ in range(n)]


def _record(tmp_path: Path, target: str, capture: str = "full", inputs: list | None = None) -> Path:
    out = tmp_path / "golden"
    record(target, inputs if inputs is not None else _inputs(), out=out, capture=capture, batch_size=2,
           snapshot_env=False)
    return out


PERTURB_STEP = "m = models.build(models.LoopNet)\nwith torch.no_grad():\n    m.step.weight[0, 0] += 1e-3\nreturn m"


@pytest.mark.parametrize("capture", ["outputs", "stats", "full"])
def test_loop_model_same_everything_passes(tmp_path: Path, capture: str) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)"), capture)
    r = verify(a, recorded_target(a))
    assert r.verdict == PASS, r.reason
    if capture != "outputs":
        keys = [layer["key"] for layer in r.layers]
        assert {"step#0/out", "step#1/out", "step#2/out"} <= set(keys)
        assert all(layer["status"] == "match" for layer in r.layers)


def test_loop_model_each_call_of_a_perturbed_module_introduces(tmp_path: Path) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)"))
    r = verify(a, pipeline_file(tmp_path, "loop_b", PERTURB_STEP))
    assert r.verdict == FAIL
    assert r.first_divergent_layer == "step#0/out" and r.first_introducing_layer == "step#0/out"
    by_key = {layer["key"]: layer for layer in r.layers}
    assert by_key["act#0/out"]["introduced"] is False  # tanh of a different input: inherited
    assert by_key["step#1/out"]["introduced"] is True  # same perturbed weight, called again
    assert [p["name"] for p in r.assets["params"]] == ["step.weight"]


def test_inplace_relu_perturbed_bias_introduced_then_inherited(tmp_path: Path) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "relu", "return models.build(models.InplaceReluNet)"))
    assert verify(a, recorded_target(a)).verdict == PASS  # the in-place ReLU did not corrupt what A stored
    body = "m = models.build(models.InplaceReluNet)\nwith torch.no_grad():\n    m.fc.bias += 0.5\nreturn m"
    r = verify(a, pipeline_file(tmp_path, "relu_b", body))
    assert r.first_divergent_layer == "fc#0/out" and r.first_introducing_layer == "fc#0/out"
    by_key = {layer["key"]: layer for layer in r.layers}
    assert by_key["relu#0/out"]["introduced"] is False and by_key["head#0/out"]["introduced"] is False


def test_nested_outputs_compare_per_leaf(tmp_path: Path) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "nested", "return models.build(models.NestedOutputNet)"))
    r = verify(a, recorded_target(a))
    assert r.verdict == PASS, r.reason
    keys = {layer["key"] for layer in r.layers}
    assert {"#0/out/pair/0", "#0/out/pair/1", "#0/out/obj/logits", "#0/out/count"} <= keys
    body = "m = models.build(models.NestedOutputNet)\nwith torch.no_grad():\n    m.fc.bias += 1\nreturn m"
    r = verify(a, pipeline_file(tmp_path, "nested_b", body))
    assert r.first_divergent_layer == "fc#0/out" and r.first_introducing_layer == "fc#0/out"
    assert {"#0/out/pair/1", "#0/out/obj/logits"} <= {x["key"] for x in r.layers if x["status"] == "diverged"}


def test_training_mode_names_the_module_and_fails_at_dropout(tmp_path: Path) -> None:
    texts = ["one", "two words", "three words here", "and four"]
    a = tmp_path / "golden"
    record(pipeline_file(tmp_path, "text", "return models.build_tiny_text()"), texts, out=a, capture="full",
           snapshot_env=False)
    body = "p = models.build_tiny_text()\np.model.train()\nreturn p"
    r = verify(a, pipeline_file(tmp_path, "text_b", body))
    assert r.verdict == FAIL
    finding = next(f for f in r.runtime if f["code"] == "training_mode")
    assert "mlp.2" in finding["message"]
    assert r.first_divergent_layer == "mlp.2#0/out" and r.layers[[x["key"] for x in r.layers].index("mlp.2#0/out")]["type"] == "Dropout"
    assert r.first_introducing_layer == "mlp.2#0/out"


def test_verify_with_explicit_tolerance_passes_a_small_perturbation(tmp_path: Path) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)"))
    r = verify(a, pipeline_file(tmp_path, "loop_b", PERTURB_STEP), atol=1e-2)
    assert not r.first_divergent_layer and r.verdict == FAIL  # layers within 1e-2, but the weight hash differs
    assert "weight" in r.reason


def test_max_slowdown_without_a_baseline_is_exit_2(tmp_path: Path, run_cli) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)"), "outputs")
    code, out, err = run_cli("verify", a, recorded_target(a), "--max-slowdown", "10", "--json")
    assert code == 2 and out == "" and "bench.json" in err and "--bench" in err and "Traceback" not in err


def test_significant_slowdown_fails_the_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import parity.benchmark

    target = pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)")
    out = tmp_path / "golden"
    record(target, _inputs(), out=out, capture="stats", batch_size=2, snapshot_env=False, bench=True)
    seen = {}

    def slow(pipeline, inputs, baseline_json, max_slowdown, progress=None):  # the bench engineer's contract
        seen.update(baseline=baseline_json["schema"], max_slowdown=max_slowdown, n=len(inputs))
        return {"regression": True, "verdict": "regression", "stages": []}

    monkeypatch.setattr(parity.benchmark, "verify_performance", slow)
    r = verify(out, target, max_slowdown=0.05)
    assert seen == {"baseline": "parity.bench/1", "max_slowdown": 0.05, "n": 4}
    assert r.verdict == FAIL and r.performance == {"regression": True, "verdict": "regression", "stages": []}
    assert "slower" in r.reason


@pytest.mark.slow
def test_max_slowdown_measures_against_the_recorded_baseline(tmp_path: Path, run_cli) -> None:
    target = pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)")
    out = tmp_path / "golden"
    record(target, _inputs(), out=out, capture="stats", batch_size=2, snapshot_env=False, bench=True)
    code, stdout, err = run_cli("verify", out, target, "--max-slowdown", "1000", "--json")
    doc = json.loads(stdout)
    assert code == 0, (doc["reason"], err)
    assert doc["performance"] is not None and doc["performance"]["regression"] is False


def test_full_record_against_a_stats_record_compares_samples(tmp_path: Path) -> None:
    from parity.comparison import compare

    target = pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)")
    full = tmp_path / "full"
    record(target, _inputs(), out=full, capture="full", batch_size=2, snapshot_env=False)
    stats_same, stats_other = tmp_path / "stats", tmp_path / "stats_b"
    record(target, _inputs(), out=stats_same, capture="stats", batch_size=2, snapshot_env=False)
    record(pipeline_file(tmp_path, "loop_b", PERTURB_STEP), _inputs(), out=stats_other, capture="stats", batch_size=2,
           snapshot_env=False)
    assert compare(full, stats_same).verdict == PASS
    assert compare(stats_same, full).verdict == PASS
    r = compare(full, stats_other)
    assert r.first_divergent_layer == "step#0/out" and any("capture=stats" in n for n in r.notes)


def _break_truncate(rec: Path) -> str:
    shard = sorted((rec / "activations").glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    return shard.name


def _break_flip(rec: Path) -> str:
    shard = sorted((rec / "activations").glob("*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    return shard.name


def _break_delete(rec: Path) -> str:
    (rec / "layers.json").unlink()
    return "layers.json"


def _break_future(rec: Path) -> str:
    manifest = json.loads((rec / "manifest.json").read_text())
    manifest["format_version"] += 1
    (rec / "manifest.json").write_text(json.dumps(manifest))
    return "manifest.json"


@pytest.mark.parametrize("breaker", [_break_truncate, _break_flip, _break_delete, _break_future])
def test_damaged_real_record_is_refused_naming_the_file(tmp_path: Path, run_cli, breaker) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)"))
    name = breaker(a)
    code, out, err = run_cli("verify", a, "--json")
    assert code == 2 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and name in err and "fix:" in err


def test_calibrated_noise_floor_reaches_the_report(tmp_path: Path) -> None:
    target = pipeline_file(tmp_path, "conv", "return models.build_conv()")
    out = tmp_path / "golden"
    record(target, out=out, capture="stats", calibrate=True, snapshot_env=False)
    r = verify(out, target)
    assert r.verdict == PASS, r.reason
    floors = [x["noise_floor"] for x in r.layers if x["noise_floor"] is not None]
    assert floors and all(f >= 0 for f in floors)
    assert all(x["atol"] >= (x["noise_floor"] or 0) for x in r.layers if x["atol"] is not None)


def test_non_tensor_output_value_change_is_a_divergence(tmp_path: Path) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "nested", "return models.build(models.NestedOutputNet)"))
    body = ("m = models.build(models.NestedOutputNet)\nf = m.forward\n"
            "m.forward = lambda x: {**f(x), 'count': 4}\nreturn m")
    r = verify(a, pipeline_file(tmp_path, "nested_b", body))
    row = next(x for x in r.layers if x["key"] == "#0/out/count")
    assert row["status"] == "diverged" and "3 in A, 4 in B" in row["notes"][0]
    assert r.verdict == FAIL


def test_records_of_different_inputs_say_so(tmp_path: Path) -> None:
    from parity.comparison import compare

    target = pipeline_file(tmp_path, "text", "return models.build_tiny_text()")
    record(target, ["one", "two"], out=tmp_path / "a", capture="stats", snapshot_env=False)
    record(target, ["one", "three"], out=tmp_path / "b", capture="stats", snapshot_env=False)
    r = compare(tmp_path / "a", tmp_path / "b")
    assert r.verdict == FAIL and any("different inputs" in n for n in r.notes)
    assert not any("different inputs" in n for n in compare(tmp_path / "a", tmp_path / "a").notes)


@pytest.mark.parametrize("cls", ["SharedParamsNet", "CustomFunctionNet", "HookedNet"])
def test_awkward_models_pass_and_localise_a_perturbed_first_layer(tmp_path: Path, cls: str) -> None:
    a = _record(tmp_path, pipeline_file(tmp_path, "m", f"return models.build(models.{cls})"))
    assert verify(a, recorded_target(a)).verdict == PASS
    first = "first" if cls == "SharedParamsNet" else "fc"
    body = f"m = models.build(models.{cls})\nwith torch.no_grad():\n    m.{first}.bias += 0.5\nreturn m"
    r = verify(a, pipeline_file(tmp_path, "m_b", body))
    assert r.verdict == FAIL
    assert r.first_divergent_layer == f"{first}#0/out" and r.first_introducing_layer == f"{first}#0/out"


def test_verify_makes_room_for_b_whatever_the_default_size_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # verify has no --max-size: B's record is as large as A's, so a default limit below
    # A's size must not stop it with a message naming a flag verify does not have.
    from parity.records import budget

    a = _record(tmp_path, pipeline_file(tmp_path, "loop", "return models.build(models.LoopNet)"))
    monkeypatch.setattr(budget, "DEFAULT_MAX_SIZE", 1024)
    r = verify(a, recorded_target(a))
    assert r.verdict == PASS, r.reason
