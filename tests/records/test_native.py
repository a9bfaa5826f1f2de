"""The compiled one-pass kernel: same hashes and stats as the numpy path, a cache that
is reused and never half-written, and a quiet fallback when it cannot be built."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from parity.records import native, read_record, record
from parity.records.stats import _BLOCK, _hash_keys, read_summary

TESTS = Path(__file__).resolve().parents[1]
needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="no C compiler on this machine")


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty kernel cache and no kernel loaded yet in this process."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PARITY_CACHE_DIR", str(cache))
    monkeypatch.delenv("PARITY_NATIVE", raising=False)
    native.kernel.cache_clear()
    yield cache
    native.kernel.cache_clear()


def _without_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "kernel", lambda: None)


@needs_cc
def test_kernel_compiles_once_into_the_cache_and_is_reused(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert native.kernel() is not None, native.why_not()
    built = sorted(p.name for p in fresh.iterdir())
    assert len(built) == 1 and built[0].startswith("summary-")  # no temporary file left behind
    native.kernel.cache_clear()

    def no_compiler(*_: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(native, "_compile", no_compiler)
    assert native.kernel() is not None and native.why_not() is None


@needs_cc
@pytest.mark.parametrize("n", [5, _BLOCK, 3 * _BLOCK + 17, 250_000])
def test_f32_pass_matches_the_numpy_definitions(fresh: Path, n: int) -> None:
    k = native.kernel()
    assert k is not None, native.why_not()
    values = (np.random.default_rng(n).standard_normal(n) * 50).astype(np.float32)
    hashes, (mn, mx, s, sq) = k.f32_summary(values, _BLOCK)
    whole = (n // _BLOCK) * _BLOCK
    if whole:
        words = values[:whole].view("<u4").reshape(-1, _BLOCK)
        expected = np.einsum("ij,j->i", words, _hash_keys()).astype("<u4")
        assert hashes is not None and np.array_equal(hashes, expected)
        assert np.array_equal(k.block_hashes(words), expected)
    else:
        assert hashes is None
    wide = values.astype(np.float64)
    assert (mn, mx) == (wide.min(), wide.max())
    assert s == pytest.approx(wide.sum(), rel=1e-5, abs=1e-2)
    assert sq == pytest.approx(np.dot(wide, wide), rel=1e-6)


@needs_cc
@pytest.mark.parametrize("t", [
    torch.randn(3, 5000),
    torch.randn(300, 300).t(),                                     # not contiguous
    torch.arange(40_000, dtype=torch.float32)[::3],                # strided 1-D
    torch.tensor([1.0, float("nan"), float("inf"), -2.0] * 3000),  # non-finite: exact fallback
    torch.full((9000,), 1e4) + torch.arange(9000) * 1e-3,          # cancellation
    torch.arange(70_000) * 7,                                      # int64: hash-only pass
    torch.randn(4097).half(),
], ids=["f32", "transposed", "strided1d", "nonfinite", "cancel", "i64", "f16"])
def test_hook_summaries_match_with_and_without_the_kernel(fresh: Path, monkeypatch: pytest.MonkeyPatch,
                                                          t: torch.Tensor) -> None:
    assert native.kernel() is not None, native.why_not()
    fast = read_summary(t, True, seed=1)
    with monkeypatch.context() as m:
        _without_kernel(m)
        slow = read_summary(t, True, seed=1)
    assert fast.hash == slow.hash
    assert fast.stats is not None and slow.stats is not None
    for name, value in slow.stats.items():
        assert fast.stats[name] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), name
    assert np.array_equal(np.asarray(fast.sample).view(np.uint8), np.asarray(slow.sample).view(np.uint8))


@needs_cc
def test_records_with_and_without_the_kernel_agree_layer_by_layer(
        fresh: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A record made where the kernel builds verifies where it does not: same hashes."""
    sys.path.insert(0, str(TESTS))
    try:
        import models
    finally:
        sys.path.remove(str(TESTS))
    torch.manual_seed(0)
    model = models.SmallConvNet().eval()
    images = [torch.randn(3, 33, 31) for _ in range(4)]  # odd sizes: hash tails as well as blocks
    assert native.kernel() is not None
    record(model, images, out=tmp_path / "a", capture="stats", batch_size=2, snapshot_env=False)
    with monkeypatch.context() as m:
        _without_kernel(m)
        record(model, images, out=tmp_path / "b", capture="stats", batch_size=2, snapshot_env=False)
    a, b = read_record(tmp_path / "a").layers, read_record(tmp_path / "b").layers
    assert [e["key"] for e in a] == [e["key"] for e in b] and len(a) > 10
    for ea, eb in zip(a, b):
        assert ea["hash"] == eb["hash"], ea["key"]
        for name, value in (eb["stats"] or {}).items():
            assert ea["stats"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (ea["key"], name)


def test_disabled_by_environment(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_NATIVE", "0")
    assert native.kernel() is None
    assert native.why_not() == "disabled by PARITY_NATIVE=0"
    assert not fresh.exists()


def test_no_compiler_falls_back_with_the_reason(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setenv("PATH", str(fresh.parent / "empty-path"))
    monkeypatch.setattr(native.sysconfig, "get_config_var", lambda name: None)
    assert native.kernel() is None
    assert "no C compiler" in (native.why_not() or "")
    summary = read_summary(torch.randn(3 * _BLOCK + 5), True, seed=0)  # capture still works
    assert summary.stats is not None and summary.hash


def test_failing_compiler_leaves_no_partial_library(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    false = shutil.which("false")
    assert false is not None
    monkeypatch.setenv("CC", false)
    assert native.kernel() is None
    assert "failed" in (native.why_not() or "")
    assert list(fresh.iterdir()) == []


@needs_cc
def test_a_kernel_that_fails_its_self_test_is_not_used(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = native.Kernel.f32_summary

    def off_by_one(self: native.Kernel, flat: np.ndarray, block: int) -> tuple[object, list[float]]:
        hashes, moments = real(self, flat, block)
        return hashes, [moments[0], moments[1] + 1.0, *moments[2:]]

    monkeypatch.setattr(native.Kernel, "f32_summary", off_by_one)
    assert native.kernel() is None
    assert "self-test" in (native.why_not() or "")


@needs_cc
def test_a_damaged_cached_library_is_rebuilt(fresh: Path) -> None:
    assert native.kernel() is not None
    (built,) = fresh.iterdir()
    built.unlink()  # a new file: the loaded library's pages must not change under it
    built.write_bytes(b"not a shared library")
    native.kernel.cache_clear()
    assert native.kernel() is not None, native.why_not()


def test_a_cache_path_that_is_a_file_falls_back_naming_it(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_text("not a folder")
    assert native.kernel() is None
    assert str(fresh) in (native.why_not() or "") and "PARITY_CACHE_DIR" in (native.why_not() or "")
    assert fresh.read_text() == "not a folder"


def test_a_missing_kernel_source_is_not_an_error(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_SOURCE", fresh.parent / "gone" / "_summary.c")
    assert native.kernel() is None
    assert "could not be set up" in (native.why_not() or "") and "FileNotFoundError" in (native.why_not() or "")
