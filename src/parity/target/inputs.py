"""``--inputs`` files -> a list of raw inputs, and batching.

``.txt``: one raw input per line (blank lines skipped); ``.jsonl``: one JSON value per
line; ``.safetensors`` / ``.npz``: tensors whose first dimension is the batch, returned
as :class:`TensorInputs` rows that are fed straight to the model (no preprocess).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from parity._io import check_not_lfs_pointer
from parity.errors import InputsError
from parity.target.pipeline import Pipeline

SUFFIXES = (".txt", ".jsonl", ".safetensors", ".npz")
_POSITIONAL = re.compile(r"arr_(\d+)$")  # names numpy.savez gives to positional arrays


class TensorInputs(list):  # type: ignore[type-arg]
    """Rows of tensor inputs: each row is a tensor, a dict of tensors (fed as keyword
    arguments) or a tuple of tensors (positional). Rows skip preprocess and are stacked."""


def load_inputs(path: str | Path | None, pipeline: Pipeline) -> list[Any]:
    """The raw inputs in ``path``, or ``pipeline.example_inputs`` when ``path`` is None."""
    if path is None:
        if not pipeline.example_inputs:
            raise InputsError("no inputs: the target has no example_inputs",
                              fix="pass --inputs FILE (.txt, .jsonl, .safetensors or .npz)")
        examples = pipeline.example_inputs  # tensor rows stay rows: they skip preprocess
        return TensorInputs(examples) if isinstance(examples, TensorInputs) else list(examples)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputsError(f"{path}: unknown inputs format {suffix or '(no suffix)'}",
                          fix="use .txt, .jsonl, .safetensors or .npz")
    if not path.is_file():
        raise InputsError(f"{path}: no such file", fix="pass an existing --inputs file")
    check_not_lfs_pointer(path)
    loader = {".txt": _from_txt, ".jsonl": _from_jsonl, ".safetensors": _from_safetensors, ".npz": _from_npz}
    items = loader[suffix](path)
    if not items:
        raise InputsError(f"{path}: contains no inputs", fix="put at least one input in the file")
    return items


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InputsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                          fix="save the file as UTF-8") from None


def _from_txt(path: Path) -> list[Any]:
    return [line for line in _read_text(path).splitlines() if line.strip()]


def _from_jsonl(path: Path) -> list[Any]:
    items = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputsError(f"{path}:{number}: not valid JSON ({exc.msg})",
                              fix="write one JSON value per line") from None
    return items


def _from_safetensors(path: Path) -> TensorInputs:
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # SafetensorError, OSError
        raise InputsError(f"{path}: not a safetensors file ({exc})",
                          fix="write it with safetensors.torch.save_file") from None
    return _rows(path, tensors)


def _from_npz(path: Path) -> TensorInputs:
    import numpy as np
    import torch

    try:
        with np.load(str(path), allow_pickle=False) as data:
            tensors = {name: torch.from_numpy(np.ascontiguousarray(data[name])) for name in data.files}
    except Exception as exc:  # BadZipFile, ValueError (object arrays need pickle), OSError
        raise InputsError(f"{path}: not a readable .npz of numeric arrays ({exc})",
                          fix="write it with numpy.savez of numeric arrays") from None
    return _rows(path, tensors)


def _rows(path: Path, tensors: dict[str, Any]) -> TensorInputs:
    """Split named batch tensors into rows; all must share the first dimension."""
    if not tensors:
        raise InputsError(f"{path}: contains no tensors", fix="save at least one tensor")
    sizes = {name: (t.shape[0] if t.dim() else None) for name, t in tensors.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise InputsError(f"{path}: tensors must share their first (batch) dimension, got {sizes}",
                          fix="save tensors of shape (N, ...) with the same N")
    n = int(next(iter(sizes.values())) or 0)
    names = list(tensors)
    if len(names) == 1:
        only = tensors[names[0]]
        return TensorInputs(only[i] for i in range(n))
    if all(_POSITIONAL.match(name) for name in names):
        ordered = sorted(names, key=lambda s: int(_POSITIONAL.match(s).group(1)))  # type: ignore[union-attr]
        return TensorInputs(tuple(tensors[k][i] for k in ordered) for i in range(n))
    return TensorInputs({k: tensors[k][i] for k in names} for i in range(n))


def iter_batches(inputs: Sequence[Any], batch_size: int) -> Iterator[list[Any]]:
    """Consecutive slices of ``batch_size`` items (the last may be shorter).

    A :class:`TensorInputs` stays a TensorInputs so callers know to skip preprocess.
    """
    if batch_size < 1:
        raise InputsError(f"--batch-size {batch_size}: must be at least 1", fix="pass --batch-size 1 or more")
    kind = TensorInputs if isinstance(inputs, TensorInputs) else list
    for start in range(0, len(inputs), batch_size):
        yield kind(inputs[start:start + batch_size])


def collate(items: Sequence[Any]) -> Any:
    """Stack a batch of rows: tensors stacked, dicts/tuples per field, numbers and
    nested lists via ``torch.tensor``. Strings cannot be collated: they need a preprocess."""
    import torch

    first = items[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(items))
    if isinstance(first, dict):
        return {k: collate([it[k] for it in items]) for k in first}
    if isinstance(first, tuple):
        return tuple(collate([it[i] for it in items]) for i in range(len(first)))
    if isinstance(first, str):
        raise InputsError("text inputs need a preprocess, and the target has none",
                          fix="return a parity.Pipeline with preprocess=..., or pass tensor --inputs")
    try:
        return torch.tensor(list(items))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputsError(f"inputs of type {type(first).__name__} cannot be batched into a tensor ({exc})",
                          fix="give the target a preprocess, or pass tensor --inputs") from None


def model_input(pipeline: Pipeline, batch: list[Any]) -> Any:
    """What the model receives for ``batch``: TensorInputs are collated and skip
    preprocess; otherwise preprocess(batch), or collate when there is none."""
    if isinstance(batch, TensorInputs) or pipeline.preprocess is None:
        return collate(batch)
    return pipeline.preprocess(batch)
