"""Which input dimensions are dynamic, and inputs of other shapes for the parity check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BATCH, SEQ = "batch", "seq"


def dynamic_dims(names: Sequence[str], tensors: Sequence[Any]) -> dict[str, dict[str, str]]:
    """{input name: {dim index (as str): "batch"|"seq"}} for the dimensions left dynamic.

    Dim 0 of every input is the batch. Integer or bool inputs of rank 2 sharing the same
    second dimension are token inputs (ids, masks, type ids): their dim 1 is the
    sequence, and so is dim 1 of any other input of that length (float masks, embeddings).
    """
    out: dict[str, dict[str, str]] = {n: {"0": BATCH} for n, t in zip(names, tensors) if t.dim() >= 1}
    seq = _token_length(tensors)
    for name, t in zip(names, tensors):
        if seq is not None and t.dim() >= 2 and int(t.shape[1]) == seq:
            out[name]["1"] = SEQ
    return out


def _is_token(t: Any) -> bool:
    return t.dim() == 2 and not t.is_floating_point() and not t.is_complex()


def _token_length(tensors: Sequence[Any]) -> int | None:
    lengths = {int(t.shape[1]) for t in tensors if _is_token(t)}
    return lengths.pop() if len(lengths) == 1 else None


def batch_of_at_least_two(tensors: Sequence[Any], dims: dict[str, dict[str, str]], names: Sequence[str]) -> list[Any]:
    """The example with its batch repeated to 2 rows when it has 1.

    torch.export specialises a dimension of size 1 (its 0/1 rule), so a dynamic batch
    must be traced with at least two rows.
    """
    if not any("0" in dims.get(n, {}) for n in names):
        return list(tensors)
    return [resize(t, batch=2) if "0" in dims.get(n, {}) and int(t.shape[0]) == 1 else t
            for n, t in zip(names, tensors)]


def resize(t: Any, *, batch: int | None = None, seq: int | None = None) -> Any:
    """``t`` with ``batch`` rows (cycling rows) and/or ``seq`` columns (trimmed or cycled)."""
    import torch

    if batch is not None:
        rows = torch.arange(batch) % int(t.shape[0])
        t = t.index_select(0, rows)
    if seq is not None:
        cols = torch.arange(seq) % int(t.shape[1])
        t = t.index_select(1, cols)
    return t.contiguous()


def shape_variants(names: Sequence[str], tensors: Sequence[Any],
                   dims: dict[str, dict[str, str]]) -> list[tuple[str, list[Any]]]:
    """Inputs whose batch size (and sequence length, for token inputs) differ from the example.

    Rows are cycled and token columns trimmed or cycled, so every value stays a valid
    input for the model (real token ids, real pixels).
    """
    if not any(dims.values()):
        return []
    batch = next(int(t.shape[0]) for n, t in zip(names, tensors) if n in dims)
    seq = _token_length([t for n, t in zip(names, tensors) if dims.get(n, {}).get("1") == SEQ])
    plans: list[tuple[int, int | None]] = [(batch + 1, None)]
    if seq is not None:
        plans.append((batch + 2, max(2, seq - max(1, seq // 3))) if seq > 2 else (batch + 2, seq + 2))
        plans.append((batch + 1, seq + max(2, seq // 2)))
    else:
        plans.append((batch + 3, None))
    return [(_label(b, s), _apply(names, tensors, dims, b, s)) for b, s in plans]


def _apply(names: Sequence[str], tensors: Sequence[Any], dims: dict[str, dict[str, str]],
           batch: int, seq: int | None) -> list[Any]:
    out = []
    for name, t in zip(names, tensors):
        d = dims.get(name, {})
        out.append(resize(t, batch=batch if "0" in d else None, seq=seq if d.get("1") == SEQ else None))
    return out


def _label(batch: int, seq: int | None) -> str:
    return f"batch {batch}" + (f", sequence {seq}" if seq is not None else "")


def shapes_of(names: Sequence[str], tensors: Sequence[Any]) -> dict[str, list[int]]:
    return {n: [int(s) for s in t.shape] for n, t in zip(names, tensors)}
