"""Stats, content hash, seeded samples and key helpers."""

from __future__ import annotations

import math

import pytest
import torch

from parity.record import strip_wrapper_prefix
from parity.record.stats import content_hash, sample_indices, tensor_stats


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
