"""The model zoo's edge cases end to end: record A, re-run B, compare.

- complex64 values (input, a complex Linear, its output) are stored as safetensors C64,
  never as a ``null`` dtype, and a model verifies against itself;
- an LSTM fed a ``PackedSequence`` (a named tuple) is replayed on A's recorded argument,
  so a changed LSTM weight is named as introducing the error;
- a block whose ``forward`` no longer accepts an argument A passed is an API-change
  finding that names the class and the argument.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from record_targets import pipeline_file

from parity.comparison import verify
from parity.comparison.result import FAIL, PASS
from parity.records import record


def _record(tmp_path: Path, target: str, inputs: list | None = None) -> Path:
    out = tmp_path / "golden"
    record(target, inputs, out=out, capture="full", snapshot_env=False)
    return out


def _header(path: Path) -> dict:
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def _dtypes(rec: Path) -> set[str | None]:
    files = [rec / "stages.safetensors", *sorted((rec / "activations").glob("*.safetensors"))]
    return {v.get("dtype") for f in files for k, v in _header(f).items() if k != "__metadata__"}


# --- complex ---


def test_complex_model_records_c64_and_verifies_against_itself(tmp_path: Path) -> None:
    target = pipeline_file(tmp_path, "cplx", "return models.build_complex()")
    rec = _record(tmp_path, target)
    dtypes = _dtypes(rec)
    assert None not in dtypes and "C64" in dtypes, dtypes
    r = verify(rec, target)
    assert r.verdict == PASS, r.reason
    complex_layers = [x for x in r.layers if x.get("dtype") == "complex64"]
    assert {x["key"] for x in complex_layers} >= {"mix#0/out"}, [x["key"] for x in r.layers]
    assert all(x["status"] == "match" for x in r.layers)


def test_complex_weight_change_is_introduced_by_the_complex_layer(tmp_path: Path) -> None:
    rec = _record(tmp_path, pipeline_file(tmp_path, "cplx", "return models.build_complex()"))
    body = ("p = models.build_complex()\nwith torch.no_grad():\n    p.model.mix.weight[0, 0] += 1e-2j\n"
            "return p")
    r = verify(rec, pipeline_file(tmp_path, "cplx_b", body))
    assert r.verdict == FAIL
    assert r.first_divergent_layer == "mix#0/out" and r.first_introducing_layer == "mix#0/out"
    by_key = {x["key"]: x for x in r.layers}
    assert by_key["head#0/out"]["introduced"] is False


# --- PackedSequence LSTM ---


def test_packed_lstm_records_and_verifies_against_itself(tmp_path: Path) -> None:
    target = pipeline_file(tmp_path, "lstm", "return models.build_packed_lstm()")
    rec = _record(tmp_path, target)
    r = verify(rec, target)
    assert r.verdict == PASS, r.reason
    assert any(x["key"].startswith("lstm#0/out") for x in r.layers)


def test_packed_lstm_weight_change_names_the_lstm_as_introducing(tmp_path: Path) -> None:
    rec = _record(tmp_path, pipeline_file(tmp_path, "lstm", "return models.build_packed_lstm()"))
    body = ("p = models.build_packed_lstm()\nwith torch.no_grad():\n    p.model.lstm.weight_hh_l0[0, 0] += 0.5\n"
            "return p")
    r = verify(rec, pipeline_file(tmp_path, "lstm_b", body))
    assert r.verdict == FAIL
    assert r.first_divergent_layer.startswith("lstm#0/out"), r.first_divergent_layer
    assert r.first_introducing_layer is not None and r.first_introducing_layer.startswith("lstm#0/out"), (
        r.first_introducing_layer, r.notes)
    by_key = {x["key"]: x for x in r.layers}
    assert by_key["embed#0/out"]["status"] == "match"
    assert by_key["head#0/out"]["introduced"] is False  # it only inherited the LSTM's error
    assert "TypeError" not in " ".join(r.notes), r.notes
    assert [p["name"] for p in r.assets["params"]] == ["lstm.weight_hh_l0"]


# --- forward signature changed between A and B ---


def test_forward_signature_change_is_an_api_change_finding(tmp_path: Path) -> None:
    inputs = [torch.randn(8, generator=torch.Generator().manual_seed(i)) for i in range(4)]
    rec = _record(tmp_path, pipeline_file(tmp_path, "sig_a", "return models.build_signature_v1()"), inputs)
    assert verify(rec, pipeline_file(tmp_path, "sig_a2", "return models.build_signature_v1()")).verdict == PASS
    r = verify(rec, pipeline_file(tmp_path, "sig_b", "return models.build_signature_v2()"))
    assert r.verdict == FAIL and r.first_divergent_layer == "block#0/out"
    (change,) = r.api_changes
    assert change["message"] == "B's `CacheBlock.forward` no longer accepts `cache_length` (A passed it)"
    assert change["module"] == "block" and change["argument"] == "cache_length"
    assert "API change" in r.reason or any("API change" in n for n in r.notes), (r.reason, r.notes)
    assert not any("TypeError" in n for n in r.notes), r.notes


def test_signature_change_in_the_cli_report(tmp_path: Path, run_cli) -> None:
    inputs = tmp_path / "inputs.safetensors"
    from safetensors.torch import save_file

    save_file({"x": torch.randn(4, 8, generator=torch.Generator().manual_seed(0))}, str(inputs))
    a = pipeline_file(tmp_path, "sig_a", "return models.build_signature_v1()")
    code, _, err = run_cli("record", a, "--inputs", inputs, "-o", tmp_path / "golden", "--capture", "full")
    assert code == 0, err
    code, out, err = run_cli("verify", tmp_path / "golden", pipeline_file(tmp_path, "sig_b", "return models.build_signature_v2()"))
    assert code == 1 and "Traceback" not in err
    assert "no longer accepts `cache_length`" in out and "TypeError" not in out
