"""parity.exporters._inputs: which dimensions are dynamic, and the check's other shapes."""

from __future__ import annotations

import torch

from parity.exporters._inputs import batch_of_at_least_two, dynamic_dims, resize, shape_variants


def _tokens(batch: int, seq: int) -> list[torch.Tensor]:
    ids = torch.arange(batch * seq).reshape(batch, seq)
    return [ids, torch.ones(batch, seq, dtype=torch.int64)]


def test_token_inputs_get_batch_and_sequence_dims() -> None:
    names = ["input_ids", "attention_mask", "pixel_values"]
    dims = dynamic_dims(names, [*_tokens(2, 7), torch.zeros(2, 3, 8, 8)])
    assert dims == {"input_ids": {"0": "batch", "1": "seq"}, "attention_mask": {"0": "batch", "1": "seq"},
                    "pixel_values": {"0": "batch"}}


def test_float_input_of_the_token_length_follows_the_sequence() -> None:
    dims = dynamic_dims(["ids", "weights"], [torch.zeros(2, 5, dtype=torch.int64), torch.zeros(2, 5)])
    assert dims["weights"] == {"0": "batch", "1": "seq"}


def test_images_only_get_a_batch_dim() -> None:
    assert dynamic_dims(["x"], [torch.zeros(4, 3, 16, 16)]) == {"x": {"0": "batch"}}


def test_variants_change_batch_and_sequence_consistently() -> None:
    names = ["input_ids", "attention_mask"]
    tensors = _tokens(2, 9)
    variants = shape_variants(names, tensors, dynamic_dims(names, tensors))
    shapes = [[tuple(t.shape) for t in ts] for _, ts in variants]
    assert shapes == [[(3, 9), (3, 9)], [(4, 6), (4, 6)], [(3, 13), (3, 13)]]
    assert [label for label, _ in variants] == ["batch 3", "batch 4, sequence 6", "batch 3, sequence 13"]


def test_variants_reuse_real_values() -> None:
    t = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert resize(t, batch=3, seq=4).tolist() == [[1, 2, 3, 1], [4, 5, 6, 4], [1, 2, 3, 1]]


def test_static_means_no_variants() -> None:
    assert shape_variants(["x"], [torch.zeros(2, 3)], {}) == []


def test_a_batch_of_one_is_repeated_to_two_for_export() -> None:
    names, tensors = ["x"], [torch.arange(3.0).reshape(1, 3)]
    widened = batch_of_at_least_two(tensors, dynamic_dims(names, tensors), names)
    assert widened[0].tolist() == [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
