"""Introduced vs inherited: re-run B's live modules on A's recorded inputs.

A divergent layer either computes differently in B (it *introduces* the error) or
computes the same but was fed already-different inputs (it *inherits* it). Feeding B's
module exactly what A's module received settles which: if B then reproduces A's output,
the error came from upstream. Needs capture=full (A's module inputs are stored).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from parity._text import one_line
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


@dataclass
class Replay:
    """What replaying B's modules found besides ``introduced``: notes and API changes."""

    notes: list[str] = field(default_factory=list)
    #: B's module refused the arguments A's module received (a changed signature).
    api_changes: list[dict[str, Any]] = field(default_factory=list)
    #: Module paths (as recorded, wrapper prefixes stripped) whose signature refused A's call.
    refused: set[str] = field(default_factory=set)


def classify(rec_a: Record, rows: Sequence[LayerRow], model: Any, load_inputs: InputsLoader,
             has_inputs: Callable[[Record, dict[str, Any]], bool] | None = None) -> Replay:
    """Set ``introduced`` on divergent rows (True/False), leave None where replay was impossible.

    A module that only contains an introducing module gets ``contains`` instead (see
    :func:`mark_containers`). Returns notes for the report (modules not found, inputs
    not stored, replay errors) and the API changes found. ``has_inputs`` (a targeted
    ``--layers`` record) says which calls have stored inputs: the others are skipped,
    counted in one note, and never count against :data:`MAX_REPLAYS`.
    """
    import torch

    modules = module_index(model)
    found = Replay()
    done = skipped = 0
    for row in rows:
        if row.status != "diverged" or done >= MAX_REPLAYS:
            continue
        if has_inputs is not None and not has_inputs(rec_a, _entry_for_batch(rec_a, row)):
            skipped += 1
            continue
        done += 1
        module = modules.get(strip_module_path(str(row.entry.get("module", ""))))
        if module is None:
            found.notes.append(one_line(f"{row.key}: no module {row.entry.get('module')!r} in B's model to replay"))
            continue
        entry = _entry_for_batch(rec_a, row)
        with torch.no_grad():
            row.introduced = _replay_one(rec_a, entry, module, load_inputs, row.tolerance, found)
    if done >= MAX_REPLAYS:
        found.notes.append(f"replayed the first {MAX_REPLAYS} divergent layers only")
    if skipped:
        found.notes.append(f"{skipped} divergent layer(s) outside the record's --layers were not replayed "
                           "(only the selected modules have stored inputs)")
    mark_containers(rows, found.refused)
    return found


def mark_containers(rows: Sequence[LayerRow], refused: Iterable[str] = ()) -> None:
    """A module whose replay differs only because a module inside it introduces the error
    contains the error, it does not introduce it: ``introduced`` None, ``contains`` that key.

    ``encoder.layer.3`` replayed on A's inputs differs when ``encoder.layer.3.intermediate.dense``
    (a changed weight) does; naming both as introducing would send a reader to the wrong
    place. The innermost introducing modules keep ``introduced`` True. A module whose
    signature refused A's call (``refused``: an API change) counts as introducing here.
    """
    refused = set(refused)
    sources = [(r, _module_of(r)) for r in rows
               if r.introduced or (r.status == "diverged" and _module_of(r) in refused)]
    inner = {id(r): [o for o, om in sources if _inside(om, m)] for r, m in sources}
    for row, _m in sources:
        found = inner[id(row)]
        if found and row.introduced:
            leaf = next((o for o in found if not inner[id(o)]), found[0])
            row.introduced, row.contains = None, leaf.key


def _module_of(row: LayerRow) -> str:
    return strip_module_path(str(row.entry.get("module", "")))


def _inside(inner: str, outer: str) -> bool:
    """True when module path ``inner`` is strictly inside ``outer`` ("" is the root)."""
    return inner != outer and (outer == "" or inner.startswith(outer + "."))


def _entry_for_batch(rec_a: Record, row: LayerRow) -> dict[str, Any]:
    """A's entry for this key in the batch where it first diverged."""
    batch = row.first_bad_batch or 0
    for e in rec_a.layers:
        if int(e.get("batch", 0)) == batch and strip_wrapper_prefix(str(e["key"])) == row.key:
            return e
    return row.entry


def _replay_one(
    rec_a: Record, entry: dict[str, Any], module: Any, load_inputs: InputsLoader, tol: Tolerance | None,
    found: Replay,
) -> bool | None:
    key = one_line(entry["key"])
    try:
        args, kwargs = load_inputs(rec_a, entry)
    except RecordError as exc:  # e.g. an argument recorded by type only: cannot replay
        found.notes.append(one_line(f"{key}: not replayed ({exc.message})"))
        return None
    try:
        out = module(*args, **kwargs)
    except ParityError:
        raise
    except Exception as exc:  # the user's module, fed recorded inputs; report, don't crash
        refusal = signature_refusal(module, args, kwargs) if isinstance(exc, TypeError) else None
        if refusal is not None:
            _add_api_change(found, refusal, entry)
            found.refused.add(strip_module_path(str(entry.get("module", ""))))
        else:
            found.notes.append(one_line(f"{key}: replay failed ({type(exc).__name__}: {exc})"))
        return None
    got = select_output(out, str(entry.get("out", "/out")))
    want = layer_tensor(rec_a, entry)
    if got is None or want is None or not hasattr(got, "shape"):
        found.notes.append(one_line(f"{key}: replay output has no tensor at {entry.get('out')}"))
        return None
    if tol is None:
        tol = TolerancePolicy().for_layer(entry["key"], str(entry.get("dtype", "float32")), entry.get("noise_floor"))
    return not compare_tensors(want, got, tol.atol, tol.rtol).ok


def signature_refusal(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """How B's ``module.forward`` signature refuses A's arguments, or None when it accepts them.

    Binding is checked on its own, so a TypeError raised *inside* forward (a bug, a dtype
    mix-up) is never mistaken for an API change.
    """
    try:
        sig = inspect.signature(module.forward)
    except (TypeError, ValueError):  # a builtin or C++ forward: no signature to read
        return None
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        pass
    else:
        return None
    cls = type(module).__name__
    params = sig.parameters.values()
    kinds = {p.kind for p in params}
    named = {p.name for p in params if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    unknown = [k for k in kwargs if k not in named] if inspect.Parameter.VAR_KEYWORD not in kinds else []
    if unknown:
        names = ", ".join(f"`{k}`" for k in unknown)
        return {"class": cls, "method": "forward", "argument": unknown[0], "problem": "removed",
                "message": f"B's `{cls}.forward` no longer accepts {names} (A passed {'it' if len(unknown) == 1 else 'them'})"}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if inspect.Parameter.VAR_POSITIONAL not in kinds and len(args) > len(positional):
        return {"class": cls, "method": "forward", "argument": None, "problem": "positional",
                "message": f"B's `{cls}.forward` takes {len(positional)} positional argument(s), "
                           f"A passed {len(args)}"}
    given = {p.name for p in positional[:len(args)]} | set(kwargs)
    missing = [p.name for p in params if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
               and p.name not in given]
    return {"class": cls, "method": "forward", "argument": missing[0] if missing else None, "problem": "required",
            "message": f"B's `{cls}.forward` now requires "
                       + (", ".join(f"`{m}`" for m in missing) if missing else "other arguments")
                       + " (A did not pass " + ("it" if len(missing) == 1 else "them") + ")"}


def _add_api_change(found: Replay, refusal: dict[str, Any], entry: dict[str, Any]) -> None:
    module = one_line(strip_module_path(str(entry.get("module", ""))))
    if any(c["module"] == module and c["message"] == refusal["message"] for c in found.api_changes):
        return
    found.api_changes.append({**{k: one_line(v) if isinstance(v, str) else v for k, v in refusal.items()},
                              "module": module, "key": one_line(entry["key"])})


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
