"""parity.export() on small models: formats, dynamic shapes, the check, findings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from export_testing import MODELS, branch_line, target

from parity.errors import ExportError
from parity.exporters import export
from parity.target import Pipeline, load_target

SUFFIX = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx"}


def _other_shape_cases(result, example_batch: int) -> list:
    return [c for c in result.check.cases if c.shapes["input"][0] != example_batch]


@pytest.mark.parametrize("fmt", ["torchscript", "export"])
def test_convnet_artifact_passes_check_on_other_batch_sizes(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"convnet{SUFFIX[fmt]}"
    result = export(target("convnet_model.py"), fmt, out)
    assert out.is_file() and result.size_bytes == out.stat().st_size
    assert result.ok, result.to_json()
    assert result.dynamic == {"input": {"0": "batch"}}
    others = _other_shape_cases(result, example_batch=2)
    assert len(others) >= 2 and all(c.ok for c in others)
    assert all(o.metrics.numel > 0 for c in result.check.cases for o in c.outputs)


def test_torchscript_check_compares_submodules_by_name(tmp_path: Path) -> None:
    result = export(target("convnet_model.py"), "torchscript", tmp_path / "c.pt")
    compared = [s for s in result.check.submodules if s.status != "skipped"]
    names = {s.module for s in compared}
    assert {"features", "features.0", "head"} <= names
    assert all(s.status == "match" for s in compared)


def test_trace_reports_frozen_branch_and_check_fails_on_other_branch(models_dir: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("[1, 2, 3, 4]\n[0.5, 0.5, 0.5, 0.5]\n[-1, -2, -3, -4]\n[-0.5, -0.5, -0.5, -0.5]\n")
    result = export(target("branchy_model.py"), "torchscript", tmp_path / "b.pt", inputs=str(inputs))
    frozen = [f for f in result.findings if f.code == "frozen-branch"]
    assert len(frozen) == 1 and frozen[0].where.endswith(f"branchy_model.py:{branch_line()}")
    assert "data-dependent branch frozen by trace at" in frozen[0].message
    by_label = {c.label: c for c in result.check.cases}
    assert by_label["example"].ok and not by_label["inputs batch 2"].ok
    assert not result.ok


def test_script_keeps_the_branch_that_trace_freezes(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("[1, 2, 3, 4]\n[0.5, 0.5, 0.5, 0.5]\n[-1, -2, -3, -4]\n[-0.5, -0.5, -0.5, -0.5]\n")
    result = export(target("branchy_model.py"), "torchscript", tmp_path / "b.pt", method="script",
                    inputs=str(inputs))
    assert result.ok and not result.findings
    assert len(result.check.cases) == 4


def test_torch_export_refuses_data_dependent_branch_with_alternative(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as info:
        export(target("branchy_model.py"), "export", tmp_path / "b.pt2")
    assert "could not capture the model" in info.value.message
    assert f"branchy_model.py:{branch_line()}" in info.value.message
    assert "--format torchscript" in (info.value.fix or "")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_batch_of_one_is_widened_so_the_batch_stays_dynamic(tmp_path: Path) -> None:
    pipeline = load_target(target("tiny_model.py")).pipeline
    pipeline.batch_size = 1
    result = export(pipeline, "export", tmp_path / "t.pt2")
    assert any(f.code == "batch-widened" for f in result.findings)
    assert not any(f.code == "specialised-dim" for f in result.findings)
    assert result.ok and {c.shapes["input"][0] for c in result.check.cases} >= {1, 2, 4}


def test_static_export_fixes_shapes_and_checks_only_the_example_shape(tmp_path: Path) -> None:
    from parity.target.artifacts import load_artifact

    out = tmp_path / "t.pt2"
    result = export(target("tiny_model.py"), "export", out, static=True)
    assert result.dynamic == {} and any(f.code == "static" for f in result.findings)
    assert {tuple(c.shapes["input"]) for c in result.check.cases} == {(3, 4)}
    model = load_artifact(out).model
    assert model(torch.randn(3, 4)).shape == (3, 2)
    with pytest.raises(Exception, match="3"):
        model(torch.randn(5, 4))


def test_no_check_skips_the_check(tmp_path: Path) -> None:
    result = export(target("tiny_model.py"), "torchscript", tmp_path / "t.pt", check=False)
    assert result.check is None and result.ok
    assert result.to_json()["check"] is None


def test_dict_inputs_keep_their_names_and_order(tmp_path: Path) -> None:
    from parity.target.artifacts import load_artifact

    class TwoInputs(torch.nn.Module):
        def forward(self, ids: torch.Tensor, scale: torch.Tensor) -> dict:
            return {"scaled": ids.float() * scale, "total": (ids.float() * scale).sum(1)}

    pipeline = Pipeline(model=TwoInputs(), example_inputs=[{"scale": torch.ones(3), "ids": torch.arange(3)}] * 2,
                        batch_size=2)
    out = tmp_path / "two.pt"
    result = export(pipeline, "torchscript", out)
    assert result.ok and result.input_names == ["scale", "ids"] and result.output_names == ["scaled", "total"]
    got = load_artifact(out).model(ids=torch.tensor([[1, 2, 3]]), scale=torch.full((1, 3), 2.0))
    assert set(got) == {"scaled", "total"} and got["total"].item() == 12.0


def test_model_that_is_not_a_module_is_refused(tmp_path: Path) -> None:
    pipeline = Pipeline(model=lambda x: x, example_inputs=[torch.ones(2)])
    with pytest.raises(ExportError, match=r"not a torch\.nn\.Module"):
        export(pipeline, "torchscript", tmp_path / "x.pt")


def test_non_tensor_model_input_is_refused(tmp_path: Path) -> None:
    pipeline = Pipeline(model=torch.nn.Identity(), preprocess=lambda rows: {"text": rows}, example_inputs=["a"])
    with pytest.raises(ExportError, match="'text' is a list"):
        export(pipeline, "torchscript", tmp_path / "x.pt")


def test_specialised_batch_is_a_finding_with_the_guarding_line_and_fails_the_check(tmp_path: Path) -> None:
    result = export(target("shape_branch_model.py"), "export", tmp_path / "r.pt2")
    (finding,) = [f for f in result.findings if f.code == "specialised-dim"]
    line = next(i for i, text in enumerate((MODELS / "shape_branch_model.py").read_text().splitlines(), start=1)
                if "x.shape[0] == 4" in text)
    assert finding.where == f"{_short(MODELS / 'shape_branch_model.py')}:{line}"
    assert "specialised to 4" in finding.message
    other = [c for c in result.check.cases if c.shapes["input"][0] != 4]
    assert other and all(c.error and not c.ok for c in other) and not result.ok


def _short(path: Path) -> str:
    from parity.target.formats.job import short_path

    return short_path(str(path))


def test_export_reports_progress_for_the_export_and_every_check_case(tmp_path: Path) -> None:
    events: list = []
    result = export(target("tiny_model.py"), "torchscript", tmp_path / "m.pt", progress=events.append)
    assert result.ok
    steps = [(e.task, e.done, e.total) for e in events]
    assert steps[:2] == [("export", 0, 1), ("export", 1, 1)]
    assert events[1].bytes_written == result.size_bytes
    checks = [e for e in events if e.task == "export check"]
    assert [e.done for e in checks] == list(range(1, len(result.check.cases) + 1))
    assert all(e.total == len(result.check.cases) for e in checks)
