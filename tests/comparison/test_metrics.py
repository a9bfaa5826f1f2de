"""compare_tensors: every metric against a straightforward float64 reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from parity.comparison import metrics
from parity.comparison.metrics import compare_tensors


def _reference(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> dict[str, float]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = np.abs(a64 - b64)
    fail = (d > atol) & (d > rtol * np.abs(a64))
    return {
        "max_abs": d.max(),
        "mean_abs": d.mean(),
        "rel_l2": np.linalg.norm(a64 - b64) / np.linalg.norm(a64),
        "cosine": a64 @ b64 / (np.linalg.norm(a64) * np.linalg.norm(b64)),
        "mismatch_frac": fail.mean(),
    }


@pytest.mark.parametrize("n", [1, 1000, metrics.CHUNK * 2 + 17])
def test_metrics_match_float64_reference_across_chunks(n: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n).astype(np.float32)
    b = (a + rng.standard_normal(n).astype(np.float32) * 3e-5).astype(np.float32)
    got = compare_tensors(torch.from_numpy(a), torch.from_numpy(b), 1e-5, 1e-4).to_json()
    want = _reference(a, b, 1e-5, 1e-4)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-4, abs=1e-7), name
    if n > 1:
        assert 0 < got["mismatch_frac"] < 1


def test_polygraphy_rule_needs_both_atol_and_rtol_to_fail() -> None:
    a = torch.tensor([1000.0, 0.001, 1.0])
    b = torch.tensor([1000.01, 0.0011, 1.0])
    m = compare_tensors(a, b, atol=1e-3, rtol=1e-4)
    # 1000 vs 1000.01: |d|=0.01 > atol but < rtol*|a|=0.1 -> passes
    # 0.001 vs 0.0011: |d|=1e-4 < atol -> passes
    assert m.mismatches == 0 and m.ok
    m = compare_tensors(a, torch.tensor([1000.2, 0.001, 1.0]), atol=1e-3, rtol=1e-4)
    assert m.mismatches == 1 and not m.ok


def test_identical_tensors_are_ok_with_perfect_metrics() -> None:
    a = torch.randn(4, 5)
    m = compare_tensors(a, a.clone(), 1e-5, 1e-4)
    assert m.ok and m.max_abs == 0 and m.rel_l2 == 0 and m.cosine == pytest.approx(1.0)


def test_integer_tensors_are_compared_exactly() -> None:
    a = torch.tensor([[101, 2023, 102]])
    m = compare_tensors(a, torch.tensor([[101, 2024, 102]]), atol=10.0, rtol=10.0)
    assert m.exact and m.mismatches == 1 and not m.ok and m.max_abs == 1
    assert compare_tensors(a, a.clone(), 0, 0).ok


def test_bool_tensors_and_numpy_inputs() -> None:
    a = np.array([True, False, True])
    assert compare_tensors(a, a.copy(), 1e-5, 1e-4).ok
    assert compare_tensors(a, np.array([True, True, True]), 1e-5, 1e-4).mismatches == 1


def test_shape_mismatch_is_reported_not_raised() -> None:
    m = compare_tensors(torch.zeros(2, 3), torch.zeros(3, 2), 1e-5, 1e-4)
    assert not m.comparable and not m.ok
    j = m.to_json()
    assert j["max_abs"] is None and j["shape_a"] == [2, 3] and j["shape_b"] == [3, 2]


def test_dtype_mismatch_is_compared_and_flagged() -> None:
    a = torch.randn(100)
    m = compare_tensors(a, a.half(), 1e-2, 1e-2)
    assert m.dtype_mismatch and not m.ok and m.mismatches == 0
    assert m.max_abs is not None and 0 < m.max_abs < 1e-2


def test_nan_and_inf_agreement_and_disagreement() -> None:
    a = torch.tensor([1.0, float("nan"), float("inf"), 2.0, 3.0])
    same = compare_tensors(a, a.clone(), 1e-5, 1e-4)
    assert same.ok and same.nonfinite_mismatches == 0 and same.max_abs == 0
    b = torch.tensor([1.0, float("nan"), 5.0, float("nan"), float("-inf")])
    m = compare_tensors(a, b, 1e-5, 1e-4)
    assert m.nonfinite_mismatches == 3 and m.mismatches == 3
    assert math.isfinite(m.max_abs or 0.0)
    assert m.to_json()["mismatch_frac"] == pytest.approx(3 / 5)


def test_half_precision_inputs_use_float32_work() -> None:
    a = torch.randn(1000, dtype=torch.bfloat16)
    m = compare_tensors(a, a.clone(), 1e-2, 1e-2)
    assert m.ok and m.dtype_a == "bfloat16"


def test_merge_equals_metrics_of_the_concatenation() -> None:
    a1, a2 = torch.randn(300), torch.randn(200)
    b1, b2 = a1 + 1e-3 * torch.randn(300), a2 + 1e-3 * torch.randn(200)
    merged = compare_tensors(a1, b1, 1e-5, 1e-4).merge(compare_tensors(a2, b2, 1e-5, 1e-4))
    whole = compare_tensors(torch.cat([a1, a2]), torch.cat([b1, b2]), 1e-5, 1e-4)
    for name in ("max_abs", "mean_abs", "rel_l2", "cosine", "mismatch_frac"):
        assert merged.to_json()[name] == pytest.approx(whole.to_json()[name], rel=1e-5), name


def test_thread_count_is_restored() -> None:
    before = torch.get_num_threads()
    compare_tensors(torch.randn(10), torch.randn(10), 1e-5, 1e-4)
    assert torch.get_num_threads() == before


def test_zero_reference_gives_infinite_rel_l2_as_null() -> None:
    m = compare_tensors(torch.zeros(3), torch.ones(3), 1e-5, 1e-4)
    assert m.rel_l2 == math.inf and m.to_json()["rel_l2"] is None


def test_huge_finite_values_do_not_overflow_the_sums() -> None:
    a = torch.tensor([3e38, -3e38, 1.0])
    m = compare_tensors(a, a.clone(), 1e-5, 1e-4)
    assert m.ok and m.nonfinite_mismatches == 0 and m.cosine == pytest.approx(1.0)

_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(a=arrays(np.float32, st.integers(1, 300), elements=_floats), noise=st.floats(0, 1e-2),
       atol=st.floats(0, 1e-2), rtol=st.floats(0, 1e-2))
def test_mismatch_count_matches_the_rule_elementwise(a: np.ndarray, noise: float, atol: float, rtol: float) -> None:
    b = (a + np.float32(noise) * np.sin(np.arange(a.size, dtype=np.float32))).astype(np.float32)
    m = compare_tensors(torch.from_numpy(a), torch.from_numpy(b), atol, rtol)
    d = np.abs(a.astype(np.float32) - b)
    want = int(((d > np.float32(atol)) & (d > np.float32(rtol) * np.abs(a))).sum())
    assert m.mismatches == want
    assert m.max_abs == pytest.approx(float(d.max()), rel=1e-6, abs=1e-12)


def test_large_integer_ids_are_compared_exactly() -> None:
    a = torch.tensor([2**60, 5])
    m = compare_tensors(a, torch.tensor([2**60 + 1, 5]), 0, 0)
    assert m.mismatches == 1 and not m.ok
