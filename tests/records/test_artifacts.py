"""`parity record model.pt2 -o g && parity verify g` (the README's artifact journey):
records of TorchScript, torch.export and ONNX artifacts verify against the artifact."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from parity.records import load_record_inputs, read_record
from parity.records.format import STAGES_META, finalize_manifest
from parity.target import TensorInputs

TINY = '''
import torch
from torch import nn
from parity.target import Pipeline


def build():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    rows = [torch.randn(4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    return Pipeline(model=model, example_inputs=rows, batch_size=3, name="tiny")
'''

FORMATS = [
    pytest.param("torchscript", ".pt", id="torchscript"),
    pytest.param("export", ".pt2", id="export", marks=pytest.mark.slow),
    pytest.param("onnx", ".onnx", id="onnx", marks=[pytest.mark.slow, pytest.mark.skipif(
        importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")]),
]


def _artifact(tmp_path: Path, fmt: str, suffix: str) -> Path:
    from parity.exporters import export

    source = tmp_path / "tiny_model.py"
    source.write_text(TINY)
    out = tmp_path / f"model{suffix}"
    export(f"{source}:build", fmt, out, check=False)
    return out


@pytest.mark.parametrize("fmt, suffix", FORMATS)
def test_record_of_an_artifact_verifies_against_it(run_cli, tmp_path: Path, fmt: str, suffix: str) -> None:
    artifact = _artifact(tmp_path, fmt, suffix)
    golden = tmp_path / "golden"
    code, _, err = run_cli("record", artifact, "-o", golden)
    assert code == 0, err
    rows = load_record_inputs(read_record(golden))
    assert isinstance(rows, TensorInputs) and len(rows) == 3  # the embedded example rows, fed as rows
    code, out, err = run_cli("verify", golden, artifact, "--json")
    assert code == 0, err
    assert json.loads(out)["verdict"] in ("PASS", "PASS-with-warnings")


def test_artifact_record_from_before_the_fix_is_refused_with_one_line(run_cli, tmp_path: Path) -> None:
    """Records written before the fix hold the rows as a "preprocess" stage: verify says
    to record the artifact again (exit 2, one line), never a KeyError."""
    artifact = _artifact(tmp_path, "torchscript", ".pt")
    golden = tmp_path / "golden"
    assert run_cli("record", artifact, "-o", golden)[0] == 0
    meta = json.loads((golden / STAGES_META).read_text())
    for batch in meta["batches"]:
        batch["stages"]["preprocess"] = batch["stages"].pop("inputs")
    (golden / STAGES_META).write_text(json.dumps(meta))
    manifest = json.loads((golden / "manifest.json").read_text())
    finalize_manifest(golden, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})
    code, out, err = run_cli("verify", golden, artifact, "--json")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "stages.json" in err and "record the artifact again" in err


def test_preprocessed_tensor_rows_that_were_not_stored_are_a_record_error(tmp_path: Path) -> None:
    """Tensor rows through a user preprocess: the rows are not in the record; reading
    them back is a one-line RecordError naming stages.json, not a KeyError."""
    import torch

    from parity.errors import RecordError
    from parity.records import record
    from parity.target import Pipeline

    pipe = Pipeline(model=torch.nn.Linear(4, 2), preprocess=lambda rows: torch.stack(rows) * 2,
                    example_inputs=[torch.ones(4), torch.zeros(4)], batch_size=2)
    record(pipe, out=tmp_path / "rec", snapshot_env=False)
    with pytest.raises(RecordError, match=r"stages\.json: A.s tensor inputs went through a preprocess"):
        load_record_inputs(tmp_path / "rec")
