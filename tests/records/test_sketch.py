"""The stats layers' linear sketch (issue 16): the kernel and the numpy path give the
same bits, it is linear, every float dtype gets one, the seed ignores wrapper
prefixes, and read_record refuses a forged or damaged sketch like any other field."""

from __future__ import annotations

import base64
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from parity.errors import RecordError
from parity.records import native, read_record, record
from parity.records.format import MANIFEST, finalize_manifest
from parity.records.stats import SKETCH_SCHEME, decode_sketch, read_summary, sketch_seed
from parity.target import Pipeline

needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="no C compiler on this machine")
SIZES = [1, 15, 16, 17, 4095, 4096, 4097, 3 * 4096 + 123, 64 * 4096 + 5, 250_003]


def _values(n: int) -> np.ndarray:
    return (np.random.default_rng(n).standard_normal(n) * 7).astype(np.float32)


@needs_cc
@pytest.mark.parametrize("n", SIZES)
def test_kernel_and_numpy_give_the_same_sketch_bits(n: int) -> None:
    k = native.kernel()
    assert k is not None, native.why_not()
    x = _values(n)
    slow = native.sketch_numpy(x, 1234)
    for fast in (k.f32_sketch(x, 1234), k.f32_summary_sketch(x, 4096, 1234)[2]):
        size = native.SKETCH_SIZE
        assert fast[:size].tobytes() == slow[:size].tobytes()  # the sketch itself: the same bits
        np.testing.assert_allclose(fast[size:], slow[size:], rtol=1e-5)  # bucket magnitudes: up to rounding


@pytest.mark.parametrize("n", [4097, 250_003])
def test_summary_with_and_without_the_kernel_store_the_same_sketch(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    t = torch.from_numpy(_values(n))
    with_kernel = read_summary(t, True, 0, sketch_seed=77).sketch
    monkeypatch.setattr(native, "kernel", lambda: None)
    without = read_summary(t, True, 0, sketch_seed=77).sketch
    assert with_kernel is not None and without is not None
    assert with_kernel["values"] == without["values"] and with_kernel["seed"] == without["seed"] == 77
    for a, b in zip(decode_sketch(with_kernel)[1:], decode_sketch(without)[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5)


def _rows_energy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a[: native.SKETCH_SIZE] - b[: native.SKETCH_SIZE]).reshape(native.SKETCH_ROWS, -1)
    return (d ** 2).sum(axis=1)


def test_sketch_is_linear_and_estimates_the_difference_norm() -> None:
    x = _values(100_000)
    spike = x.copy()
    spike[31_337] += 0.5
    # one changed element lands in one bucket of each row: every row sees exactly its square
    np.testing.assert_allclose(_rows_energy(native.sketch_numpy(x, 5), native.sketch_numpy(spike, 5)), 0.25,
                               rtol=1e-9)
    noise = np.random.default_rng(1).standard_normal(x.size).astype(np.float32) * 1e-3
    y = x + noise
    lhs = native.sketch_numpy(x, 5)[:64] - native.sketch_numpy(y, 5)[:64]
    rhs = native.sketch_numpy((x.astype(np.float64) - y).astype(np.float32), 5)[:64]
    np.testing.assert_allclose(lhs, rhs, atol=1e-6)  # sketch(A) - sketch(B) = sketch(A - B)
    truth = float(((x.astype(np.float64) - y) ** 2).sum())
    assert 0.4 * truth < float(np.median(_rows_energy(native.sketch_numpy(x, 5), native.sketch_numpy(y, 5)))) < 2.5 * truth


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_float_dtypes_are_sketched_from_their_float32_values(dtype: torch.dtype) -> None:
    t = torch.from_numpy(_values(5000)).to(dtype)
    got = read_summary(t, True, 0, sketch_seed=9).sketch
    want = native.sketch_numpy(t.float().numpy(), 9)
    assert got is not None and decode_sketch(got)[0].tobytes() == want[:64].astype(np.float32).astype(np.float64).tobytes()


def test_integer_non_finite_and_unseeded_tensors_have_no_sketch() -> None:
    assert read_summary(torch.arange(100), True, 0, sketch_seed=1).sketch is None
    bad = torch.ones(100)
    bad[3] = float("nan")
    assert read_summary(bad, True, 0, sketch_seed=1).sketch is None
    assert read_summary(torch.ones(100), True, 0).sketch is None


def test_seed_is_the_layer_key_without_wrapper_prefixes() -> None:
    plain = sketch_seed("encoder.layer.0", 0, "/out")
    assert sketch_seed("module.encoder.layer.0", 0, "/out") == plain == sketch_seed("_orig_mod.encoder.layer.0", 0, "/out")
    assert len({plain, sketch_seed("encoder.layer.0", 1, "/out"), sketch_seed("encoder.layer.1", 0, "/out")}) == 3


# -- in a record ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2)).eval()
    pipe = Pipeline(model=model, example_inputs=[torch.randn(4) for _ in range(4)], batch_size=2)
    root = tmp_path_factory.mktemp("sketch")
    return {level: record(pipe, out=root / level, capture=level, snapshot_env=False).path for level in ("stats", "full")}


def test_stats_entries_carry_a_sketch_and_l1_full_entries_no_sketch(golden: dict[str, Path]) -> None:
    stats = read_record(golden["stats"]).layers
    assert stats and all(e["sketch"]["scheme"] == SKETCH_SCHEME for e in stats if e["kind"] == "tensor")
    assert all(isinstance(e["stats"]["l1"], float) for e in stats if e["kind"] == "tensor")
    assert not any("sketch" in e for e in read_record(golden["full"]).layers)


def _forge(golden: Path, tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    rec = tmp_path / "forged"
    shutil.copytree(golden, rec)
    layers = json.loads((rec / "layers.json").read_text())
    change(layers[0]["sketch"])
    (rec / "layers.json").write_text(json.dumps(layers))
    manifest = json.loads((rec / MANIFEST).read_text())
    finalize_manifest(rec, {k: v for k, v in manifest.items() if k not in ("files", "format", "format_version")})
    return rec


def _b64(values: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


FORGERIES = {
    "short": (lambda s: s.update(values=_b64([0.0] * 63)), "values: 252 bytes"),
    "long": (lambda s: s.update(sq=_b64([0.0] * 65)), "sq: 260 bytes"),
    "nan": (lambda s: s.update(values=_b64([float("nan")] + [0.0] * 63)), "not finite"),
    "inf": (lambda s: s.update(sq=_b64([float("inf")] + [0.0] * 63)), "not finite"),
    "negative": (lambda s: s.update(sq=_b64([-1.0] + [0.0] * 63)), "below zero"),
    "list": (lambda s: s.update(values=[0.0] * 64), "values: expected a string"),
    "not base64": (lambda s: s.update(values="!!!!"), "not base64"),
    "missing": (lambda s: s.pop("sq"), "sq: missing"),
    "seed": (lambda s: s.update(seed="7"), "seed: expected an integer"),
    "object": (lambda s: s.clear() or s.update(scheme=3, seed=1), "scheme: expected a string"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_sketch_is_refused_naming_layers_json(golden: dict[str, Path], tmp_path: Path, name: str) -> None:
    change, words = FORGERIES[name]
    rec = _forge(golden["stats"], tmp_path, change)
    with pytest.raises(RecordError) as info:
        read_record(rec)
    assert "layers.json" in str(info.value) and words in str(info.value) and "sketch" in str(info.value)


def test_forged_sketch_makes_verify_exit_2(golden: dict[str, Path], tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    rec = _forge(golden["stats"], tmp_path, FORGERIES["nan"][0])
    code, out, err = run_cli("compare", rec, golden["stats"])
    assert code == 2 and "layers.json" in err and "not finite" in err, (out, err)


def test_sketch_of_another_scheme_is_accepted_and_ignored(golden: dict[str, Path], tmp_path: Path) -> None:
    rec = _forge(golden["stats"], tmp_path, lambda s: s.update(scheme="cs8x64-future", values=[1, 2]))
    assert read_record(rec).layers[0]["sketch"]["scheme"] == "cs8x64-future"
