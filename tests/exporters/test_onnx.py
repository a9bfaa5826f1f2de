"""ONNX artifacts (parity[onnx]): metadata in metadata_props, check, isolated run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_testing import MODELS, run_isolated, target

from parity.exporters import export
from parity.target.formats import onnx as onnx_format


@pytest.mark.slow
def test_convnet_onnx_passes_check_and_runs_without_its_code(tmp_path: Path) -> None:
    import onnx

    out = tmp_path / "convnet.onnx"
    result = export(target("convnet_model.py"), "onnx", out)
    assert result.ok, result.to_json()
    assert {c.shapes["input"][0] for c in result.check.cases} >= {2, 3, 5}
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    meta = json.loads(props["parity.json"])
    assert meta["input_names"] == ["input"] and meta["dynamic"] == {"input": {"0": "batch"}}
    report, outputs = run_isolated(out, ["convnet_model"], MODELS, tmp_path)
    assert report["kind"] == "onnx" and outputs["output"].shape == (2, 5)


def test_missing_onnx_packages_stop_before_loading_the_model(run_cli, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setattr(onnx_format.importlib.util, "find_spec", lambda name: None)
    code, _, err = run_cli("export", target("convnet_model.py"), "--format", "onnx", "-o", tmp_path / "c.onnx")
    assert code == 2 and "--format onnx needs onnx and onnxscript" in err and "parity[onnx]" in err
