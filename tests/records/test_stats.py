"""Stats, content hash, seeded samples and key helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from parity.records import strip_wrapper_prefix
from parity.records.stats import content_hash, sample_indices, tensor_stats


def test_sample_indices_are_a_pure_function_of_numel_and_seed() -> None:
    a = sample_indices(10_000, 0)
    assert a == sample_indices.__wrapped__(10_000, 0)  # not just the cache answering
    assert len(a) == len(set(a)) == 64 and list(a) == sorted(a) and max(a) < 10_000
    assert a != sample_indices(10_000, 1) and a != sample_indices(10_001, 0)
    assert sample_indices(5, 0) == (0, 1, 2, 3, 4)


def test_stats_count_nan_and_inf_and_summarise_the_rest() -> None:
    t = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), 3.0])
    s = tensor_stats(t)
    assert s is not None
    assert (s["nan"], s["inf"], s["min"], s["max"], s["mean"]) == (1, 2, 1.0, 3.0, 2.0)
    assert s["l2"] == pytest.approx(math.sqrt(10))


def test_stats_survive_cancellation_and_integers() -> None:
    t = torch.full((1000,), 1e4) + torch.arange(1000) * 1e-3
    s = tensor_stats(t)
    assert s is not None and s["std"] == pytest.approx(float(t.double().std(correction=0)), rel=1e-3)
    ids = tensor_stats(torch.tensor([[101, 7592, 102]]))
    assert ids is not None and ids["max"] == 7592 and ids["min"] == 101
    assert tensor_stats(torch.zeros(0)) is None


def test_content_hash_sees_every_byte_and_layout() -> None:
    t = torch.arange(12.0).reshape(3, 4)
    assert content_hash(t) == content_hash(t.clone())
    assert content_hash(t.t()) != content_hash(t)  # row-major bytes of the view
    u = t.clone()
    u[2, 3] = torch.nextafter(u[2, 3], torch.tensor(100.0))
    assert content_hash(u) != content_hash(t)


@pytest.mark.parametrize(("key", "stripped"), [
    ("module.encoder.layer.3#0/out/0", "encoder.layer.3#0/out/0"),
    ("_orig_mod.module.fc#1/out", "fc#1/out"),
    ("encoder.modules.x#0/out", "encoder.modules.x#0/out"),
    ("module#0/out", "#0/out"),
    ("encoder.module.fc#0/out", "encoder.module.fc#0/out"),
    ("encoder._orig_mod.fc#0/out", "encoder.fc#0/out"),
])
def test_strip_wrapper_prefix(key: str, stripped: str) -> None:
    assert strip_wrapper_prefix(key) == stripped


def _unchunked_hash(t: torch.Tensor) -> str:
    """The documented algorithm in one go, to pin the chunked implementation to it."""
    import hashlib

    from parity.records.stats import _BLOCK, _hash_keys

    data = t.reshape(-1).contiguous().view(torch.uint8).numpy()
    main = (data.size // (4 * _BLOCK)) * 4 * _BLOCK
    digest = hashlib.sha256(b"parity-mlh32")
    if main:
        words = data[:main].view("<u4").reshape(-1, _BLOCK)
        digest.update(np.einsum("ij,j->i", words, _hash_keys()).astype("<u4").tobytes())
    digest.update(data[main:].tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("t", [
    torch.randn(3_000_001),                      # several 1 MiB chunks and a tail
    torch.randn(700_001).half(),                 # 2-byte elements
    torch.arange(2**20),                         # int64, exact chunk multiple
    torch.randn(5, 7),                           # smaller than one hash block
], ids=["f32", "f16", "i64", "tiny"])
def test_one_pass_summary_matches_separate_stats_and_hash(t: torch.Tensor) -> None:
    from parity.records.stats import summarize

    stats, digest = summarize(t)
    expected = tensor_stats(t)
    assert digest == _unchunked_hash(t) == content_hash(t)
    assert stats is not None and expected is not None
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_one_pass_summary_finds_nan_in_a_late_chunk() -> None:
    from parity.records.stats import summarize

    t = torch.randn(2_000_000)
    t[1_900_000] = float("nan")
    stats, _ = summarize(t)
    assert stats is not None and stats["nan"] == 1 and stats["max"] == pytest.approx(float(t.nan_to_num(-9).max()))


@pytest.mark.parametrize("t", [
    torch.randn(3, 5000),                                   # several hash blocks and a tail
    torch.randn(64, 64).t(),                                # not contiguous
    torch.randn(4097).half(),
    torch.arange(70_000) * 7,                               # int64: stats in float64
    torch.rand(9000) > 0.3,                                 # bool
    torch.tensor([1.0, float("nan"), float("inf"), -2.0]),  # non-finite: counted, not summed
    torch.full((5000,), 1e4) + torch.arange(5000) * 1e-3,   # cancellation: exact variance
    torch.randn(300, 7).bfloat16(),                         # no numpy twin: the general path
    torch.zeros(0, 3),
    torch.randn(4, 4, dtype=torch.complex64),
], ids=["f32", "strided", "f16", "i64", "bool", "nonfinite", "cancel", "bf16", "empty", "complex"])
def test_hook_read_path_gives_the_same_summary_as_the_general_one(t: torch.Tensor) -> None:
    from parity.records.stats import read_summary, summarize, take_sample

    got = read_summary(t, True, seed=3)
    stats, digest = summarize(t)
    assert got.hash == digest == content_hash(t)
    assert (got.stats is None) == (stats is None)
    for name, value in (stats or {}).items():
        assert got.stats is not None and got.stats[name] == pytest.approx(value, rel=1e-5, abs=1e-6, nan_ok=True), name
    if stats is not None:
        expected = take_sample(t.reshape(-1), 3)
        sample = torch.as_tensor(got.sample).view(expected.dtype)
        assert torch.equal(sample.view(torch.uint8), expected.view(torch.uint8))  # bitwise: NaN too
    assert list(got.shape) == list(t.shape) and got.dtype == t.dtype


def test_device_block_hashes_match_the_host_ones() -> None:
    """The accelerator path (torch int32 arithmetic) gives the host's bytes; run here on
    CPU tensors, with words that overflow int32 products and sums."""
    from parity.records.stats import _BLOCK, _device_block_hashes, _hash_keys

    raw = torch.randint(0, 256, (4 * _BLOCK * 5,), dtype=torch.uint8)
    raw[: 4 * _BLOCK] = 255  # every word 0xFFFFFFFF
    host = np.einsum("ij,j->i", raw.numpy().view("<u4").reshape(-1, _BLOCK), _hash_keys()).astype("<u4").tobytes()
    assert _device_block_hashes(raw) == host
