"""Introduced vs inherited: re-run B's live modules on A's recorded inputs.

A divergent layer either computes differently in B (it *introduces* the error) or
computes the same but was fed already-different inputs (it *inherits* it). Feeding B's
module exactly what A's module received settles which: if B then reproduces A's output,
the error came from upstream. Needs capture=full (A's module inputs are stored).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from parity.comparison.layers import LayerRow, layer_tensor
from parity.comparison.metrics import compare_tensors
from parity.comparison.tolerances import Tolerance, TolerancePolicy, strip_wrapper_prefix
from parity.errors import ParityError, RecordError
from parity.records.format import Record

#: Replays per verify: enough for the divergent region of a deep model, bounded in time.
MAX_REPLAYS = 200

#: (record, layer entry) -> (args, kwargs) that A's module received; provided by parity.records.
InputsLoader = Callable[[Record, dict[str, Any]], "tuple[tuple[Any, ...], dict[str, Any]]"]


def module_index(model: Any) -> dict[str, Any]:
    """B's submodules by path without wrapper prefixes (``module.``, ``_orig_mod.``)."""
    out: dict[str, Any] = {}
    for name, module in model.named_modules():
        out.setdefault(strip_module_path(name), module)
    return out


def strip_module_path(path: str) -> str:
    """Module path without wrapper prefixes; a bare wrapper attribute is the root ("")."""
    return strip_wrapper_prefix(path)


def classify(rec_a: Record, rows: Iterable[LayerRow], model: Any, load_inputs: InputsLoader) -> list[str]:
    """Set ``introduced`` on divergent rows (True/False), leave None where replay was impossible.

    Returns notes for the report (modules not found, inputs not stored, replay errors).
    """
    import torch

    modules = module_index(model)
    notes: list[str] = []
    done = 0
    for row in rows:
        if row.status != "diverged" or done >= MAX_REPLAYS:
            continue
        done += 1
        module = modules.get(strip_module_path(str(row.entry.get("module", ""))))
        if module is None:
            notes.append(f"{row.key}: no module {row.entry.get('module')!r} in B's model to replay")
            continue
        entry = _entry_for_batch(rec_a, row)
        with torch.no_grad():
            row.introduced = _replay_one(rec_a, entry, module, load_inputs, row.tolerance, notes)
    if done >= MAX_REPLAYS:
        notes.append(f"replayed the first {MAX_REPLAYS} divergent layers only")
    return notes


def _entry_for_batch(rec_a: Record, row: LayerRow) -> dict[str, Any]:
    """A's entry for this key in the batch where it first diverged."""
    batch = row.first_bad_batch or 0
    for e in rec_a.layers:
        if int(e.get("batch", 0)) == batch and strip_wrapper_prefix(str(e["key"])) == row.key:
            return e
    return row.entry


def _replay_one(
    rec_a: Record, entry: dict[str, Any], module: Any, load_inputs: InputsLoader, tol: Tolerance | None,
    notes: list[str],
) -> bool | None:
    try:
        args, kwargs = load_inputs(rec_a, entry)
    except RecordError as exc:  # e.g. an argument recorded by type only: cannot replay
        notes.append(f"{entry['key']}: not replayed ({exc.message})")
        return None
    try:
        out = module(*args, **kwargs)
    except ParityError:
        raise
    except Exception as exc:  # the user's module, fed recorded inputs; report, don't crash
        notes.append(f"{entry['key']}: replay failed ({type(exc).__name__}: {exc})")
        return None
    got = select_output(out, str(entry.get("out", "/out")))
    want = layer_tensor(rec_a, entry)
    if got is None or want is None or not hasattr(got, "shape"):
        notes.append(f"{entry['key']}: replay output has no tensor at {entry.get('out')}")
        return None
    if tol is None:
        tol = TolerancePolicy().for_layer(entry["key"], str(entry.get("dtype", "float32")), entry.get("noise_floor"))
    return not compare_tensors(want, got, tol.atol, tol.rtol).ok


def select_output(value: Any, out_path: str) -> Any:
    """The element of a nested output at ``/out/0/last_hidden_state``-style paths."""
    parts = [p for p in out_path.split("/") if p][1:]  # drop the leading "out"
    for part in parts:
        value = _child(value, part)
        if value is None:
            return None
    return value


def _child(value: Any, part: str) -> Any:
    if isinstance(value, dict) or (hasattr(value, "keys") and hasattr(value, "__getitem__") and not hasattr(value, "shape")):
        try:
            return value[part]
        except (KeyError, TypeError):
            pass
    if isinstance(value, (tuple, list)) and part.lstrip("-").isdigit():
        i = int(part)
        return value[i] if -len(value) <= i < len(value) else None
    if part.isdigit() and hasattr(value, "to_tuple"):  # transformers ModelOutput
        t = value.to_tuple()
        return t[int(part)] if int(part) < len(t) else None
    return getattr(value, part, None)
