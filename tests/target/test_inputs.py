"""--inputs formats, batching and collation, including broken files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from parity.errors import InputsError
from parity.target import Pipeline, TensorInputs, collate, iter_batches, load_inputs, model_input

PIPE = Pipeline(model=torch.nn.Identity(), example_inputs=["a", "b"])


def test_txt_one_input_per_line_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("first line\n\n  second  \n")
    assert load_inputs(path, PIPE) == ["first line", "  second  "]


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "a"}\n[1, 2]\n"s"\n')
    assert load_inputs(path, PIPE) == [{"text": "a"}, [1, 2], "s"]


def test_default_is_example_inputs() -> None:
    assert load_inputs(None, PIPE) == ["a", "b"]


def test_no_inputs_at_all() -> None:
    with pytest.raises(InputsError, match="no example_inputs"):
        load_inputs(None, Pipeline(model=torch.nn.Identity()))


def test_safetensors_single_tensor_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.safetensors"
    save_file({"x": torch.arange(12.0).reshape(3, 4)}, str(path))
    rows = load_inputs(path, PIPE)
    assert isinstance(rows, TensorInputs) and len(rows) == 3
    assert torch.equal(rows[1], torch.tensor([4.0, 5.0, 6.0, 7.0]))


def test_safetensors_named_tensors_become_kwargs(tmp_path: Path) -> None:
    path = tmp_path / "in.safetensors"
    save_file({"input_ids": torch.ones(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5, dtype=torch.long)},
              str(path))
    rows = load_inputs(path, PIPE)
    batch = model_input(PIPE, rows)
    assert set(batch) == {"input_ids", "attention_mask"} and batch["input_ids"].shape == (2, 5)


def test_npz_positional_arrays_stay_in_order(tmp_path: Path) -> None:
    path = tmp_path / "in.npz"
    np.savez(path, np.zeros((2, 3)), np.ones((2, 1)))
    rows = load_inputs(path, PIPE)
    first = collate(rows)
    assert isinstance(first, tuple) and first[0].shape == (2, 3) and first[1].shape == (2, 1)


def test_tensor_rows_skip_preprocess(tmp_path: Path) -> None:
    calls = []
    pipe = Pipeline(model=torch.nn.Identity(), preprocess=lambda b: calls.append(b))
    rows = TensorInputs([torch.zeros(2), torch.ones(2)])
    assert model_input(pipe, rows).shape == (2, 2) and calls == []


def test_iter_batches_keeps_kind_and_sizes() -> None:
    batches = list(iter_batches(TensorInputs(torch.zeros(5, 1)), 2))
    assert [len(b) for b in batches] == [2, 2, 1] and all(isinstance(b, TensorInputs) for b in batches)
    assert [len(b) for b in iter_batches(["a"] * 3, 8)] == [3]


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("bad.jsonl", '{"ok": 1}\n{broken\n', r"bad.jsonl:2: not valid JSON"),
        ("bad.safetensors", "not a safetensors file", "not a safetensors file"),
        ("bad.npz", "not a zip", "not a readable .npz"),
        ("empty.txt", "\n\n", "contains no inputs"),
        ("bad.csv", "a,b", "unknown inputs format .csv"),
    ],
)
def test_broken_inputs_files(tmp_path: Path, name: str, content: str, needle: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputsError, match=needle) as err:
        load_inputs(path, PIPE)
    assert err.value.fix


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(InputsError, match="not UTF-8"):
        load_inputs(path, PIPE)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputsError, match="no such file"):
        load_inputs(tmp_path / "gone.txt", PIPE)


def test_mismatched_batch_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "in.safetensors"
    save_file({"a": torch.zeros(2, 3), "b": torch.zeros(3, 3)}, str(path))
    with pytest.raises(InputsError, match="share their first"):
        load_inputs(path, PIPE)


def test_npz_object_arrays_refused(tmp_path: Path) -> None:
    path = tmp_path / "in.npz"
    np.savez(path, np.array([{"a": 1}], dtype=object))
    with pytest.raises(InputsError, match="numeric arrays"):
        load_inputs(path, PIPE)


def test_text_without_preprocess_cannot_be_batched() -> None:
    with pytest.raises(InputsError, match="need a preprocess"):
        collate(["text"])


def test_bad_batch_size() -> None:
    with pytest.raises(InputsError, match="--batch-size 0"):
        list(iter_batches(["a"], 0))


def test_json_numbers_collate_to_a_tensor() -> None:
    assert collate([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
