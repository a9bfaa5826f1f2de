"""Complex values: complex64 is stored (safetensors C64) and compared on both parts;
what safetensors cannot hold is refused while recording, never written with a null dtype."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

from parity.comparison.metrics import compare_tensors
from parity.errors import RecordError
from parity.records import read_record, record
from parity.target import Pipeline


class ComplexNet(nn.Module):
    """A complex weight applied to complex inputs, then an FFT: complex all the way."""

    def __init__(self, dtype: torch.dtype = torch.complex64) -> None:
        super().__init__()
        self.mix = nn.Linear(4, 4, bias=False, dtype=dtype)
        self.out = nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(torch.fft.fft(self.mix(z)))


def _pipeline(dtype: torch.dtype = torch.complex64, imag_shift: float = 0.0) -> Pipeline:
    torch.manual_seed(0)
    model = ComplexNet(dtype).eval()
    if imag_shift:
        with torch.no_grad():
            model.mix.weight.imag.add_(imag_shift)
    g = torch.Generator().manual_seed(3)
    rows = [torch.randn(4, dtype=torch.complex64, generator=g).to(dtype) for _ in range(4)]
    return Pipeline(model=model, example_inputs=rows, batch_size=2, name="complex")


def _header(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n])


@pytest.mark.parametrize("capture", ["stats", "full"])
def test_complex64_is_stored_as_c64_and_reads_back(tmp_path: Path, capture: str) -> None:
    out = tmp_path / "rec"
    record(_pipeline(), out=out, capture=capture, snapshot_env=False)
    for shard in [out / "stages.safetensors", *sorted((out / "activations").iterdir())]:
        dtypes = {v["dtype"] for k, v in _header(shard).items() if k != "__metadata__"}
        assert None not in dtypes and "C64" in dtypes, (shard, dtypes)
    rec = read_record(out)
    stage = rec.tensor("stages.safetensors", "0/model")
    assert stage.dtype == torch.complex64 and stage.shape == (2, 4)
    entry = next(e for e in rec.layers if e["module"] == "mix")
    assert entry["dtype"] == "complex64" and entry["stats"]["l2"] > 0  # stats over both parts
    assert entry["shard"] is not None  # the sample (stats) or the tensor (full) is stored


def test_imaginary_only_difference_is_a_divergence() -> None:
    a = torch.randn(100, dtype=torch.complex64)
    m = compare_tensors(a, a + 1e-1j, atol=1e-5, rtol=1e-5)
    assert not m.ok and m.max_abs == pytest.approx(0.1) and m.dtype_a == "complex64" and m.shape_a == (100,)
    same = compare_tensors(a, a.clone(), atol=0.0, rtol=0.0)
    assert same.ok and same.cosine == pytest.approx(1.0)


@pytest.mark.parametrize("capture", ["stats", "full"])
def test_complex_model_verifies_and_catches_an_imaginary_change(tmp_path: Path, capture: str) -> None:
    from parity.comparison.verification import compare

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    record(_pipeline(), out=a, capture=capture, snapshot_env=False)
    record(_pipeline(), out=b, capture=capture, snapshot_env=False)
    record(_pipeline(imag_shift=1e-2), out=c, capture=capture, snapshot_env=False)
    assert compare(a, b).verdict == "PASS"
    changed = compare(a, c)
    assert changed.verdict == "FAIL" and changed.first_divergent_stage is not None
    assert changed.first_divergent_layer is not None and changed.first_divergent_layer.startswith("mix#0")


@pytest.mark.parametrize("capture", ["outputs", "stats"])
def test_complex128_is_refused_at_record_time_naming_dtype_and_place(tmp_path: Path, capture: str) -> None:
    out = tmp_path / "rec"
    with pytest.raises(RecordError) as info:
        record(_pipeline(torch.complex128), out=out, capture=capture, snapshot_env=False)
    message = str(info.value)
    assert "\n" not in message and "complex128" in message
    # outputs: the first stage tensor (A's inputs); stats: the first layer's sample
    assert ("stages.safetensors: tensor 0/inputs" in message) if capture == "outputs" else ("layer tensor 0/" in message)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary
