"""``parity export`` through the CLI: exit codes, --json, one-line errors, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_testing import branch_line, target

BRANCHY_INPUTS = "[1, 2, 3, 4]\n[0.5, 0.5, 0.5, 0.5]\n[-1, -2, -3, -4]\n[-0.5, -0.5, -0.5, -0.5]\n"


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("parity: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_json_prints_one_document_and_exit_0(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("export", target("tiny_model.py"), "--format", "torchscript", "-o", tmp_path / "t.pt",
                           "--json")
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "parity.export/1" and doc["ok"] is True
    assert doc["check"]["passed"] and len(doc["check"]["cases"]) >= 3


def test_human_output_names_verdict_and_cases(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("export", target("tiny_model.py"), "--format", "export", "-o", tmp_path / "t.pt2")
    assert code == 0 and "PASS" in out and "batch 4" in out


def test_frozen_branch_is_a_finding_and_failing_check_exits_1(run_cli, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(BRANCHY_INPUTS)
    code, out, _ = run_cli("export", target("branchy_model.py"), "--format", "torchscript", "--method", "trace",
                           "-o", tmp_path / "b.pt", "--inputs", inputs, "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["check"]["passed"] is False
    frozen = [f for f in doc["findings"] if f["code"] == "frozen-branch"]
    assert frozen and frozen[0]["where"].endswith(f"branchy_model.py:{branch_line()}")
    failing = [c for c in doc["check"]["cases"] if not c["ok"]]
    assert [c["label"] for c in failing] == ["inputs batch 2"]
    assert failing[0]["outputs"][0]["metrics"]["max_abs"] > 1.0


def test_unexportable_model_exits_2_with_reason_and_alternative(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("export", target("branchy_model.py"), "--format", "export", "-o", tmp_path / "b.pt2")
    line = _one_line_error(err)
    assert code == 2 and out == ""
    assert "could not capture the model" in line and f"branchy_model.py:{branch_line()}" in line
    assert "--format torchscript" in line
    assert list(tmp_path.iterdir()) == []


def test_no_check_flag_skips_the_check(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("export", target("tiny_model.py"), "--format", "torchscript", "-o", tmp_path / "t.pt",
                           "--no-check", "--json")
    assert code == 0 and json.loads(out)["check"] is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--format", "onnx", "-o", "{tmp}/model.pt"], "-o {tmp}/model.pt: a onnx artifact must end in .onnx"),
        (["--format", "torchscript", "-o", "{tmp}/missing/model.pt"], "folder {tmp}/missing does not exist"),
        (["--format", "torchscript", "-o", "{tmp}/m.pt", "--inputs", "{tmp}/nope.jsonl"], "nope.jsonl: no such file"),
        (["--format", "torchscript", "-o", "{tmp}/m.pt", "--inputs", "{tmp}/bad.csv"], "bad.csv: unknown inputs"),
        (["--format", "torchscript", "-o", "{tmp}/m.pt", "--atol", "-1"], "--atol -1.0: must be a finite number >= 0"),
        (["--format", "torchscript", "-o", "{tmp}/m.pt", "--rtol", "nan"], "--rtol nan: must be a finite number >= 0"),
    ],
)
def test_bad_flags_exit_2_with_one_line(run_cli, tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "bad.csv").write_text("1,2\n")
    code, _, err = run_cli("export", target("tiny_model.py"), *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and needle.format(tmp=tmp_path) in _one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_missing_target_file_exits_2(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("export", f"{tmp_path}/nope.py:build", "--format", "torchscript", "-o", tmp_path / "m.pt")
    assert code == 2 and "nope.py" in _one_line_error(err)


def test_unknown_format_is_a_usage_error(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("export", target("tiny_model.py"), "--format", "tflite", "-o", tmp_path / "m.pt")
    assert code == 2 and "tflite" in err and "Traceback" not in err


def test_exporting_an_artifact_again_is_refused(run_cli, tmp_path: Path) -> None:
    assert run_cli("export", target("tiny_model.py"), "--format", "torchscript", "-o", tmp_path / "t.pt",
                   "--no-check")[0] == 0
    code, _, err = run_cli("export", tmp_path / "t.pt", "--format", "export", "-o", tmp_path / "t.pt2")
    assert code == 2 and "already an exported artifact" in _one_line_error(err)


def test_inputs_the_preprocess_cannot_take_exit_2(run_cli, tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('"text"\n"more"\n')
    code, _, err = run_cli("export", target("branchy_model.py"), "--format", "torchscript", "-o", tmp_path / "b.pt",
                           "--inputs", inputs)
    assert code == 2 and "preprocess failed" in _one_line_error(err)
    assert not (tmp_path / "b.pt").exists()


def test_tensor_inputs_file_feeds_the_model_directly(run_cli, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.randn(5, 4)}, str(tmp_path / "rows.safetensors"))
    code, out, _ = run_cli("export", target("tiny_model.py"), "--format", "torchscript", "-o", tmp_path / "t.pt",
                           "--inputs", tmp_path / "rows.safetensors", "--json")
    doc = json.loads(out)
    assert code == 0 and [c["shapes"]["input"] for c in doc["check"]["cases"]][:2] == [[3, 4], [2, 4]]


def test_script_failure_exits_2_and_suggests_trace(run_cli, tmp_path: Path) -> None:
    code, _, err = run_cli("export", target("unscriptable_model.py"), "--format", "torchscript", "--method", "script",
                           "-o", tmp_path / "k.pt")
    line = _one_line_error(err)
    assert code == 2 and "torch.jit.script could not convert the model" in line and "--method trace" in line
    assert "unscriptable_model.py:" in line
    assert list(tmp_path.iterdir()) == []
    code, _, _ = run_cli("export", target("unscriptable_model.py"), "--format", "torchscript", "-o", tmp_path / "k.pt")
    assert code == 0


def test_explicit_tolerances_are_used_and_reported(run_cli, tmp_path: Path) -> None:
    code, out, _ = run_cli("export", target("tiny_model.py"), "--format", "export", "-o", tmp_path / "t.pt2",
                           "--atol", "0.5", "--rtol", "0.25", "--json")
    check = json.loads(out)["check"]
    assert code == 0 and check["tolerance"]["basis"] == "given"
    assert {(o["atol"], o["rtol"]) for c in check["cases"] for o in c["outputs"]} == {(0.5, 0.25)}
