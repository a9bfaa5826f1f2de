"""Reading what B needs back out of a record: A's inputs, layer tensors and samples,
and a module's recorded call arguments for replay."""

from __future__ import annotations

import os
from typing import Any

from parity.errors import RecordError
from parity.records import format as fmt
from parity.records.flatten import rebuild
from parity.records.stats import SAMPLE_SIZE, sample_indices
from parity.target import TensorInputs
from parity.target.formats import names as artifact_formats


def _open(record: fmt.Record | str | os.PathLike[str]) -> fmt.Record:
    return record if isinstance(record, fmt.Record) else fmt.read_record(record)


def load_record_inputs(record: fmt.Record | str | os.PathLike[str]) -> list[Any]:
    """A's raw inputs, to re-run B on exactly the same: a list of strings/JSON values, or
    tensor rows (a :class:`TensorInputs` when they were fed straight to the model)."""
    rec = _open(record)
    info = rec.json(fmt.INPUTS)
    if info["kind"] in ("text", "json"):
        return list(info["items"])
    if info["kind"] != "tensors":
        raise RecordError(f"{rec.where(fmt.INPUTS)}: A's inputs were Python objects that a record cannot hold",
                          fix="record with an --inputs file, or pass the same inputs to B explicitly")
    stage, direct = _input_stage(rec, info)
    rows: list[Any] = []
    for batch in rec.json(fmt.STAGES_META)["batches"]:
        stacked = rebuild(batch["stages"][stage], lambda name: rec.tensor(fmt.STAGES, name))
        try:
            rows.extend(_unstack(stacked, batch["size"]))
        except (IndexError, TypeError, ValueError):
            raise RecordError(f"{rec.where(fmt.STAGES_META)}: batch {batch['batch']}'s {stage} stage does not hold "
                              f"{batch['size']} rows", fix="record again") from None
    return TensorInputs(rows) if direct else rows


def _input_stage(rec: fmt.Record, info: dict[str, Any]) -> tuple[str, bool]:
    """(the stage holding A's tensor rows, whether they skip preprocess)."""
    batches = rec.json(fmt.STAGES_META)["batches"] if rec.has(fmt.STAGES_META) else []
    if all("inputs" in b["stages"] for b in batches):
        return "inputs", bool(info.get("direct"))
    if rec.manifest.get("target_kind") in artifact_formats():  # an older parity stored these as preprocess
        fix = "record the artifact again with this parity"
    else:
        fix = "pass the same inputs to B explicitly (--inputs FILE), or record A with tensor rows that skip preprocess"
    raise RecordError(f"{rec.where(fmt.STAGES_META)}: A's tensor inputs went through a preprocess and were not "
                      "stored", fix=fix)


def _unstack(value: Any, n: int) -> list[Any]:
    if isinstance(value, dict):
        columns = {k: _unstack(v, n) for k, v in value.items()}
        return [{k: col[i] for k, col in columns.items()} for i in range(n)]
    if isinstance(value, (tuple, list)):
        columns_t = [_unstack(v, n) for v in value]
        return [tuple(col[i] for col in columns_t) for i in range(n)]
    if getattr(value, "ndim", 0) < 1 or value.shape[0] != n:
        raise ValueError("not a batch of rows")
    return [value[i] for i in range(n)]


def stores_full(record: fmt.Record, entry: dict[str, Any]) -> bool:
    """Whether the record holds this entry's whole tensor: capture=full, or a module that
    ``--layers`` selected (its stored tensor has the entry's shape, not a sample's)."""
    if not entry.get("shard"):
        return False
    if record.capture == "full":
        return True
    if not record.manifest.get("full_layers"):
        return False
    rel = str(entry["shard"]) if "/" in str(entry["shard"]) else f"{fmt.ACTIVATIONS}/{entry['shard']}"
    stored = record.headers.get(rel, {}).get(entry.get("tensor"))
    return stored is not None and list(stored[1]) == list(entry.get("shape") or [])


def layer_tensor(record: fmt.Record, entry: dict[str, Any]) -> Any:
    """The full tensor of a layers.json entry (capture=full, or a module --layers selected)."""
    if not stores_full(record, entry):
        raise RecordError(f"{record.location}: layer {entry['key']} has no stored tensor (capture={record.capture})",
                          fix="record with --capture full (or --layers selecting its module)")
    return record.tensor(entry["shard"], entry["tensor"])


def layer_sample(record: fmt.Record, entry: dict[str, Any]) -> tuple[Any, Any]:
    """(flat indices, values) of an entry's seeded sample; B takes
    ``flat_tensor[indices]`` to compare. Works for capture=stats and full."""
    import torch

    numel = 1
    for dim in entry["shape"] or []:
        numel *= int(dim)
    seed = int(record.manifest.get("seed", 0))
    size = int(record.manifest.get("sample_size", SAMPLE_SIZE))
    indices = torch.tensor(sample_indices(numel, seed, size), dtype=torch.long)
    if stores_full(record, entry):
        return indices, layer_tensor(record, entry).reshape(-1).index_select(0, indices)
    if not entry.get("shard"):
        raise RecordError(f"{record.location}: layer {entry['key']} has no sample", fix="record with --capture stats")
    return indices, record.tensor(entry["shard"], entry["tensor"])


def has_module_inputs(record: fmt.Record, key: str, batch: int) -> bool:
    """Whether module call ``key`` (a layer key is accepted) of ``batch`` has recorded inputs."""
    if not record.has(fmt.MODULE_INPUTS):
        return False
    call_key = key.split("/", 1)[0] if "#" in key.split("/", 1)[0] else key
    return (batch, call_key) in _module_input_index(record)


def load_module_inputs(record: fmt.Record, key: str, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) of module call ``key`` (``<module path>#<call>``; a full layer key
    is accepted) in input batch ``batch``, tensors loaded from the shards.

    Raises RecordError when the record has no module inputs or when part of the call
    was recorded by type only (a non-JSON, non-tensor argument).
    """
    call_key = key.split("/", 1)[0] if "#" in key.split("/", 1)[0] else key
    index = _module_input_index(record)
    call = index.get((batch, call_key))
    if call is None:
        raise RecordError(f"{record.where(fmt.MODULE_INPUTS)}: no recorded call {call_key} in batch {batch}",
                          fix="record with --capture full")

    def load(loc: dict[str, Any]) -> Any:
        return record.tensor(loc["shard"], loc["name"])

    try:
        return tuple(rebuild(call["args"], load)), dict(rebuild(call["kwargs"], load))
    except ValueError as exc:
        raise RecordError(f"{record.where(fmt.MODULE_INPUTS)}: inputs of {call_key} cannot be rebuilt: {exc}",
                          fix="this module cannot be replayed in isolation; compare its outputs only") from None


def _module_input_index(record: fmt.Record) -> dict[tuple[int, str], dict[str, Any]]:
    cache_key = "_module_input_index"
    if cache_key not in record._cache:
        if not record.has(fmt.MODULE_INPUTS):
            raise RecordError(f"{record.location}: capture={record.capture} has no module inputs",
                              fix="record with --capture full (or --layers PATTERN)")
        calls = record.json(fmt.MODULE_INPUTS)
        record._cache[cache_key] = {(c["batch"], c["key"]): c for c in calls}
    index: dict[tuple[int, str], dict[str, Any]] = record._cache[cache_key]
    return index
