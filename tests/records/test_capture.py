"""Layer capture on small models with awkward shapes (tests/models.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from models import (
    CustomFunctionNet,
    HookedNet,
    InplaceReluNet,
    LoopNet,
    NestedOutputNet,
    SharedParamsNet,
    SmallConvNet,
    build_tiny_text,
)
from parity.errors import ParityError, RecordError, TargetError
from parity.records import (
    layer_sample,
    layer_tensor,
    load_module_inputs,
    load_record_inputs,
    record,
)
from parity.target import Pipeline, TensorInputs


def _keys(rec, batch: int = 0) -> list[str]:
    return [e["key"] for e in rec.layers if e["batch"] == batch]


def _entry(rec, key: str, batch: int = 0) -> dict:
    return next(e for e in rec.layers if e["key"] == key and e["batch"] == batch)


def test_loop_calls_are_numbered_per_batch(record_model) -> None:
    torch.manual_seed(0)
    rec = record_model(LoopNet().eval())
    keys = _keys(rec)
    assert [k for k in keys if k.startswith("step#")] == ["step#0/out", "step#1/out", "step#2/out"]
    assert keys[-1] == "#0/out"  # the root finishes last: execution order
    assert _keys(rec, batch=1) == keys  # counting restarts for each batch


@pytest.mark.parametrize("capture", ["stats", "full"])
def test_inplace_relu_cannot_corrupt_the_saved_output(record_model, capture: str) -> None:
    torch.manual_seed(0)
    model = InplaceReluNet().eval()
    x = torch.randn(2, 8)
    expected = model.fc(x).detach()
    rec = record_model(model, inputs=list(x), capture=capture)
    fc = _entry(rec, "fc#0/out")
    assert fc["stats"]["min"] == pytest.approx(float(expected.min()), abs=1e-6) and fc["stats"]["min"] < 0
    _, sample = layer_sample(rec, fc)
    assert torch.allclose(sample, expected.reshape(-1)[layer_sample(rec, fc)[0]])
    if capture == "full":
        assert torch.equal(layer_tensor(rec, fc), expected)
        assert layer_tensor(rec, _entry(rec, "relu#0/out")).min() >= 0


def test_shared_parameters(record_model) -> None:
    torch.manual_seed(0)
    rec = record_model(SharedParamsNet().eval())
    params = rec.assets["params"]
    assert params["second.weight"]["tied_to"] == "first.weight"
    assert params["second.weight"]["hash"] == params["first.weight"]["hash"]
    assert {"first#0/out", "second#0/out"} <= set(_keys(rec))


def test_nested_outputs_are_flattened_and_non_tensors_recorded_by_type(record_model) -> None:
    torch.manual_seed(0)
    rec = record_model(NestedOutputNet().eval())
    root = {e["out"]: e for e in rec.layers if e["module"] == "" and e["batch"] == 0}
    assert set(root) == {"/out/pair/0", "/out/pair/1", "/out/obj/logits", "/out/obj/extra", "/out/count"}
    assert root["/out/obj/extra"]["kind"] == "NoneType" and root["/out/count"] == {**root["/out/count"], "kind": "int",
                                                                                   "value": 3}
    assert root["/out/pair/1"]["kind"] == "tensor" and root["/out/pair/1"]["shape"] == [2, 8]
    stages = rec.json("stages.json")["batches"][0]["stages"]["model"]
    assert stages["dict"]["obj"]["class"] == "Pair" and stages["dict"]["count"] == {"value": 3}


def test_custom_autograd_function(record_model) -> None:
    torch.manual_seed(0)
    model = CustomFunctionNet().eval()
    x = torch.randn(2, 8)
    rec = record_model(model, inputs=list(x), capture="full")
    assert torch.allclose(layer_tensor(rec, _entry(rec, "#0/out")), model.fc(x) ** 2)


def test_existing_hook_still_fires_and_ours_are_removed(record_model) -> None:
    torch.manual_seed(0)
    model = HookedNet().eval()
    x = torch.randn(2, 8)
    rec = record_model(model, inputs=list(x), capture="full")
    assert model.hook_calls == 1
    # Our hook runs after the user's, so it records what the model really returned.
    assert torch.allclose(layer_tensor(rec, _entry(rec, "fc#0/out")), torch.nn.functional.linear(
        x, model.fc.weight, model.fc.bias) + 1)
    assert len(model.fc._forward_hooks) == 1 and not model.fc._forward_pre_hooks
    assert all(not m._forward_hooks and not m._forward_pre_hooks for n, m in model.named_modules() if n != "fc")


def test_hooks_removed_and_nothing_written_when_the_model_fails(tmp_path: Path) -> None:
    class FailsOnSecondBatch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("boom")
            return self.fc(x)

    model = FailsOnSecondBatch()
    with pytest.raises(TargetError, match=r"model failed on batch 1 \(RuntimeError: boom\)"):
        record(Pipeline(model=model, batch_size=2), inputs=[torch.randn(8)] * 4, out=tmp_path / "rec",
               capture="full", snapshot_env=False)
    assert list(tmp_path.iterdir()) == []  # no record, no temporary sibling
    assert not model.fc._forward_hooks and not model._forward_pre_hooks


def test_interrupt_leaves_nothing(tmp_path: Path) -> None:
    def interrupted(batch: list) -> torch.Tensor:
        raise KeyboardInterrupt

    pipe = Pipeline(model=torch.nn.Identity(), preprocess=interrupted, example_inputs=["x"])
    with pytest.raises(KeyboardInterrupt):
        record(pipe, out=tmp_path / "rec", snapshot_env=False)
    assert list(tmp_path.iterdir()) == []


def test_full_capture_stores_a_shared_tensor_once(record_model) -> None:
    class Chain(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.same = torch.nn.Identity()      # returns its input object: same storage + version
            self.b = torch.nn.Linear(8, 8)
            self.b_twin = torch.nn.Linear(8, 8)  # identical weights: same content, other storage
            self.b_twin.load_state_dict(self.b.state_dict())

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.same(self.a(x))
            return self.b(h), self.b_twin(h)

    rec = record_model(Chain().eval(), capture="full", batch_size=4)
    a, same = _entry(rec, "a#0/out"), _entry(rec, "same#0/out")
    b, twin = _entry(rec, "b#0/out"), _entry(rec, "b_twin#0/out")
    assert a["tensor"] == same["tensor"] and b["tensor"] == twin["tensor"] and a["tensor"] != b["tensor"]
    with safe_open(str(rec.path / a["shard"]), framework="pt") as f:
        stored = list(f.keys())
    # a's output doubles as the input of same, b and b_twin; each distinct tensor is stored once.
    assert len(stored) == len({e["tensor"] for e in rec.layers} | _input_tensors(rec))
    assert args_tensor_name(rec, "b#0") == a["tensor"]


def _input_tensors(rec) -> set[str]:
    names = set()
    for call in rec.json("module_inputs.json"):
        for node in call["args"]["tuple"]:
            if "tensor" in node:
                names.add(node["tensor"]["name"])
    return names


def args_tensor_name(rec, key: str) -> str:
    call = next(c for c in rec.json("module_inputs.json") if c["key"] == key and c["batch"] == 0)
    return call["args"]["tuple"][0]["tensor"]["name"]


def test_module_inputs_replay_the_module(record_model) -> None:
    torch.manual_seed(0)
    model = build_tiny_text()
    rec = record_model(model, inputs=["one text", "two texts here", "three"], capture="full")
    args, kwargs = load_module_inputs(rec, "mlp.0#0/out", batch=1)
    assert torch.equal(model.model.mlp[0](*args, **kwargs), layer_tensor(rec, _entry(rec, "mlp.0#0/out", batch=1)))
    root_args, root_kwargs = load_module_inputs(rec, "#0", batch=0)
    assert set(root_kwargs) == {"input_ids", "attention_mask"} and root_args == ()


def test_unrecordable_module_inputs_raise(record_model) -> None:
    class TakesObject(torch.nn.Module):
        def forward(self, x: torch.Tensor, helper: object = None) -> torch.Tensor:
            return x * 2

    class Outer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = TakesObject()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x, helper=object())

    rec = record_model(Outer(), capture="full")
    with pytest.raises(RecordError, match="inner#0 cannot be rebuilt: a object was recorded by type only"):
        load_module_inputs(rec, "inner#0", batch=0)
    with pytest.raises(RecordError, match="no recorded call"):
        load_module_inputs(rec, "nowhere#0", batch=0)


def test_stats_and_sample_match_the_tensor(record_model) -> None:
    torch.manual_seed(0)
    model = SmallConvNet().eval()
    images = [torch.randn(3, 32, 32) for _ in range(2)]
    rec = record_model(model, inputs=images, capture="stats")
    with torch.no_grad():
        expected = model.features[0](torch.stack(images))
    entry = _entry(rec, "features.0#0/out")
    s = entry["stats"]
    assert s["max"] == pytest.approx(float(expected.max()), rel=1e-5)
    assert s["mean"] == pytest.approx(float(expected.mean()), abs=1e-5)
    assert s["std"] == pytest.approx(float(expected.std(correction=0)), rel=1e-4)
    assert s["l2"] == pytest.approx(float(expected.norm()), rel=1e-4) and s["nan"] == s["inf"] == 0
    indices, values = layer_sample(rec, entry)
    assert len(indices) == 64 and torch.equal(values, expected.reshape(-1)[indices])
    from parity.records.stats import content_hash

    assert entry["hash"] == content_hash(expected)


def test_outputs_level_has_stages_only(record_model) -> None:
    rec = record_model(build_tiny_text(), inputs=["a", "b", "c"], capture="outputs")
    assert not rec.has("layers.json") and not any(f.startswith("activations/") for f in rec.manifest["files"])
    stages = rec.json("stages.json")["batches"]
    assert [b["size"] for b in stages] == [2, 1]
    assert set(stages[0]["stages"]) == {"preprocess", "model", "postprocess"}
    assert rec.tensor("stages.safetensors", "0/preprocess/input_ids").shape[0] == 2
    assert torch.allclose(rec.tensor("stages.safetensors", "1/postprocess").sum(), torch.tensor(1.0))
    assert load_record_inputs(rec) == ["a", "b", "c"]


def test_tensor_inputs_round_trip(record_model) -> None:
    rows = TensorInputs({"input_ids": torch.tensor([i, i + 1]), "attention_mask": torch.ones(2, dtype=torch.long)}
                        for i in range(3))
    rec = record_model(build_tiny_text(), inputs=rows, capture="outputs")
    back = load_record_inputs(rec)
    assert isinstance(back, TensorInputs) and len(back) == 3
    assert torch.equal(back[2]["input_ids"], rows[2]["input_ids"])
    assert "preprocess" not in rec.json("stages.json")["batches"][0]["stages"]


def test_runtime_state_records_training_modules_and_callers_grad_mode(tmp_path: Path) -> None:
    model = build_tiny_text()
    model.model.mlp.train()
    record(model, out=tmp_path / "rec", snapshot_env=False)
    from parity.records import read_record

    runtime = read_record(tmp_path / "rec").env["runtime"]["model"]
    assert runtime["training_modules"] == ["mlp", "mlp.0", "mlp.1", "mlp.2"]
    assert runtime["grad_enabled"] is True and runtime["threads"] == torch.get_num_threads()
    assert runtime["parameters"]["head.weight"] == {"dtype": "float32", "device": "cpu"}


def test_calibrate_stores_a_noise_floor_per_layer(record_model) -> None:
    rec = record_model(build_tiny_text(), inputs=["one", "two"], calibrate=True)
    floors = [e.get("noise_floor") for e in rec.layers if e["dtype"] == "float32"]
    assert floors and all(isinstance(f, float) and f >= 0 for f in floors)
    assert rec.manifest["calibrated"] is True


def test_model_that_cannot_be_hooked_records_stages_with_a_warning(tmp_path: Path) -> None:
    pipe = Pipeline(model=lambda x: x * 2, example_inputs=[torch.ones(2)])
    result = record(pipe, out=tmp_path / "rec", snapshot_env=False)
    assert result.warnings and "not a torch.nn.Module" in result.warnings[0]
    assert result.manifest["layers_captured"] is False


def test_bad_capture_level_and_existing_output(tmp_path: Path) -> None:
    pipe = build_tiny_text()
    with pytest.raises(RecordError, match="--capture everything"):
        record(pipe, out=tmp_path / "a", capture="everything")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("keep")
    with pytest.raises(ParityError, match="already exists"):
        record(pipe, out=tmp_path / "b", snapshot_env=False)
    assert (tmp_path / "b" / "x").read_text() == "keep"


def test_env_json_embeds_the_snapshot(tmp_path: Path) -> None:
    record(build_tiny_text(), out=tmp_path / "rec")
    from parity.records import read_record

    env = read_record(tmp_path / "rec").env
    assert env["schema"] == "parity.snapshot/1" and "torch" in env["packages"]
    assert "model" in env["runtime"] and sys.version.split()[0] == env["python"]["version"]


def test_output_that_is_its_own_input_gets_stats_in_full_capture(record_model) -> None:
    rec = record_model(build_tiny_text(), inputs=["one", "two"], capture="full")
    dropout, gelu = _entry(rec, "mlp.2#0/out"), _entry(rec, "mlp.1#0/out")  # eval Dropout returns its input
    assert dropout["tensor"] == gelu["tensor"] and dropout["stats"] == gelu["stats"] is not None


def test_bench_stores_a_baseline(record_model) -> None:
    rec = record_model(build_tiny_text(), inputs=["one", "two", "three"], bench=True)
    bench = rec.bench
    assert bench is not None and bench["schema"] == "parity.bench/1" and "model" in bench["stages"]


def test_b_side_capture_without_snapshot_is_marked_partial(record_model) -> None:
    rec = record_model(build_tiny_text(), inputs=["one"])
    assert rec.env["meta"] == {"partial": True} and "model" in rec.env["runtime"]


def test_calibrate_without_layers_says_so(tmp_path: Path) -> None:
    result = record(build_tiny_text(), inputs=("one", "two"), out=tmp_path / "r", capture="outputs",
                    calibrate=True, snapshot_env=False)
    assert any("--calibrate skipped" in w for w in result.warnings)


def test_full_record_streams_into_size_bounded_shards(record_model) -> None:
    torch.manual_seed(0)
    images = [torch.randn(3, 32, 32) for _ in range(6)]
    rec = record_model(SmallConvNet().eval(), inputs=images, capture="full", shard_bytes=256 << 10)
    shards = sorted(f for f in rec.manifest["files"] if f.startswith("activations/"))
    largest = max(4 * _numel(e["shape"]) for e in rec.layers if e["shape"])
    assert len(shards) > 3
    assert all(rec.manifest["files"][f]["size"] <= (256 << 10) + largest + 65536 for f in shards)
    assert {e["shard"] for e in rec.layers if e["shard"]} <= set(shards)


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_python_api_takes_a_bare_module_and_refuses_other_objects(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = record(LoopNet().eval(), [torch.randn(8) for _ in range(2)], out=tmp_path / "m", snapshot_env=False)
    assert result.layers >= 3 and result.batches == 1
    with pytest.raises(TargetError, match=r"expected a parity\.Pipeline or a torch\.nn\.Module"):
        record(42, [torch.randn(8)], out=tmp_path / "n", snapshot_env=False)
    assert not (tmp_path / "n").exists()
