"""parity.target.artifacts (owned by export): artifacts load as TARGETs without the model code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from export_testing import MODELS, eager_outputs, run_isolated, target

from parity.comparison.metrics import compare_tensors
from parity.errors import TargetError
from parity.exporters import export
from parity.target import load_target
from parity.target.artifacts import load_artifact

SUFFIX = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx"}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_convnet_artifact_runs_in_a_process_that_cannot_import_the_model(fmt: str, tmp_path: Path) -> None:
    artifact = tmp_path / f"convnet{SUFFIX[fmt]}"
    export(target("convnet_model.py"), fmt, artifact, check=False)
    report, outputs = run_isolated(artifact, ["convnet_model"], MODELS, tmp_path)
    assert report == {"kind": fmt, "outputs": ["output"], "leaked": []}
    eager = eager_outputs(target("convnet_model.py"))
    assert compare_tensors(eager["output"], outputs["output"], 1e-5, 1e-4).ok


@pytest.mark.slow
def test_the_isolated_runner_really_blocks_the_model_module(tmp_path: Path) -> None:
    # The model folder is importable here; only the blocker stands between it and the child.
    with pytest.raises(AssertionError, match="convnet_model is blocked"):
        run_isolated("convnet_model:build", ["convnet_model"], tmp_path / "elsewhere", tmp_path,
                     extra_path=(str(MODELS),))


def test_artifact_is_a_target_with_its_example_inputs(tmp_path: Path) -> None:
    artifact = tmp_path / "tiny.pt2"
    export(target("tiny_model.py"), "export", artifact, check=False)
    loaded = load_target(str(artifact))
    assert loaded.kind == "export"
    pipeline = loaded.pipeline
    assert len(pipeline.example_inputs) == 3 and pipeline.batch_size == 3
    assert pipeline.call_model(pipeline.preprocess(list(pipeline.example_inputs))).shape == (3, 2)


def test_recording_an_artifact_gives_a_readable_record(tmp_path: Path) -> None:
    from parity.records import read_record, record

    artifact = tmp_path / "tiny.pt"
    export(target("tiny_model.py"), "torchscript", artifact, check=False)
    record(str(artifact), out=tmp_path / "rec", capture="outputs", snapshot_env=False)
    rec = read_record(tmp_path / "rec")
    assert rec.manifest["target"]


def test_artifact_is_verified_against_eager_and_benchmarked(tmp_path: Path) -> None:
    from parity.benchmark import bench
    from parity.comparison.verification import verify
    from parity.records import record

    artifact = tmp_path / "tiny.pt2"
    export(target("tiny_model.py"), "export", artifact, check=False)
    record(target("tiny_model.py"), out=tmp_path / "eager-rec", capture="outputs", snapshot_env=False)
    result = verify(tmp_path / "eager-rec", str(artifact))
    assert result.to_json()["verdict"].startswith("PASS"), result.to_json()["reason"]
    timing = bench(str(artifact), min_time=0.05, min_iters=3)
    assert timing.items == 3 and timing.to_json()["model"]["kind"] == "export"


def test_artifact_from_another_tool_loads_with_positional_outputs(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(3, 2).eval(), torch.ones(1, 3)), str(path))
    pipeline = load_artifact(path)
    assert pipeline.example_inputs is None
    assert pipeline.model(torch.ones(4, 3)).shape == (4, 2)


@pytest.mark.parametrize("suffix", [".pt", ".pt2", ".onnx"])
def test_corrupt_artifact_is_refused_naming_the_file(suffix: str, tmp_path: Path) -> None:
    bad = tmp_path / f"broken{suffix}"
    bad.write_bytes(b"this is not a model")
    with pytest.raises(TargetError) as info:
        load_artifact(bad)
    assert str(bad) in info.value.message and info.value.fix


def test_unknown_suffix_and_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="not an exported model"):
        load_artifact(tmp_path / "model.bin")
    with pytest.raises(TargetError, match="no such file"):
        load_artifact(tmp_path / "model.pt")


def test_missing_onnxruntime_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TargetError) as info:
        load_artifact(bad)
    assert "needs onnxruntime" in info.value.message and "parity[onnx]" in info.value.fix


def test_wrong_keyword_inputs_are_a_clear_error(tmp_path: Path) -> None:
    from parity.target import Pipeline

    class Named(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + b

    pipeline = Pipeline(model=Named(), example_inputs=[{"a": torch.ones(2), "b": torch.ones(2)}] * 2, batch_size=2)
    artifact = tmp_path / "named.pt"
    export(pipeline, "torchscript", artifact, check=False)
    with pytest.raises(TargetError, match="unexpected inputs"):
        load_artifact(artifact).model(a=torch.ones(1, 2), c=torch.ones(1, 2))
