"""Sections a, b and c of the report: environment, assets and weights, runtime state."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from parity._text import one_line
from parity.comparison.tolerances import strip_wrapper_prefix

# ------------------------------------------------------------------ environment


def env_diff(env_a: Mapping[str, Any], env_b: Mapping[str, Any]) -> dict[str, Any]:
    """``EnvDiff.to_json()`` of A vs B from :func:`parity.env.differences.diff`, ranked by risk.

    A snapshot the ranked diff cannot read (an older or partial env.json) falls back to
    comparing package versions directly, in the same item shape, so the report and the
    verdict still work.
    """
    from parity.env.differences import diff
    from parity.errors import SnapshotError

    try:
        result: dict[str, Any] = diff(dict(env_a), dict(env_b)).to_json()
    except SnapshotError:
        return package_diff(env_a, env_b)
    return result


def env_is_partial(env: Mapping[str, Any]) -> bool:
    """True when a record holds only runtime state, no package snapshot (``snapshot_env=False``)."""
    meta = env.get("meta")
    return bool(isinstance(meta, Mapping) and meta.get("partial")) or "packages" not in env


def package_diff(env_a: Mapping[str, Any], env_b: Mapping[str, Any]) -> dict[str, Any]:
    """Minimal environment diff: added, removed and changed packages."""
    pa, pb = _packages(env_a), _packages(env_b)
    items = []
    for name in sorted(set(pa) | set(pb)):
        va, vb = pa.get(name), pb.get(name)
        if va == vb:
            continue
        change = "added" if va is None else "removed" if vb is None else "changed"
        items.append({"category": "package", "name": name, "a": va, "b": vb, "change": change, "risk": "medium",
                      "reason": "package version differs", "stages": ["preprocess", "model", "postprocess"]})
    return {"identical": not items, "items": items}


def _packages(env: Mapping[str, Any]) -> dict[str, str | None]:
    packages = env.get("packages") or {}
    if not isinstance(packages, Mapping):
        return {}
    return {str(k): (v.get("version") if isinstance(v, Mapping) else str(v)) for k, v in packages.items()}


# ------------------------------------------------------------- assets, weights


def assets_diff(assets_a: Mapping[str, Any], assets_b: Mapping[str, Any], *, known_a: bool | None = None,
                known_b: bool | None = None) -> dict[str, Any]:
    """Differing asset files (matched by path relative to their common folder) and weights.

    ``params`` covers parameters and buffers, matched by name without wrapper prefixes.
    ``max_abs`` is null: a record holds weight hashes, not the weights. ``known_*`` says
    whether each side lists its weights (default: it lists any parameter or buffer).
    """
    files = _file_changes(_mapping(assets_a.get("files")), _mapping(assets_b.get("files")))
    weights_a = {**_mapping(assets_a.get("buffers")), **_mapping(assets_a.get("params"))}
    weights_b = {**_mapping(assets_b.get("buffers")), **_mapping(assets_b.get("params"))}
    if not (bool(weights_a) if known_a is None else known_a):
        # A record that lists no weights (an artifact, or an assets.json without them)
        # says nothing about them: "weights unknown", never "same weights".
        return {"files": files, "params": [], "weights_compared": False,
                "note": "weights not compared (record lists none); stages and layers still are"}
    if not (bool(weights_b) if known_b is None else known_b):
        # An opaque artifact (an ONNX session, an AOTInductor package) exposes no named
        # weights: nothing can be said about them, which is not "every weight removed".
        return {"files": files, "params": [], "weights_compared": False,
                "note": "B exposes no named weights (e.g. an ONNX or AOTInductor artifact): "
                        "weights not compared; stages and layers still are"}
    return {"files": files, "params": _param_changes(weights_a, weights_b), "weights_compared": True}


def weights_known(assets: Mapping[str, Any], record: Any = None) -> bool:
    """Whether a record lists its weights (``Record.weights_known`` when the reader has it)."""
    known = getattr(record, "weights_known", None)
    if isinstance(known, bool):
        return known
    return bool(_mapping(assets.get("params")) or _mapping(assets.get("buffers")))


def _file_changes(fa: Mapping[str, Any], fb: Mapping[str, Any]) -> list[dict[str, Any]]:
    if set(fa) != set(fb):
        ra, rb = _relative(fa), _relative(fb)
    else:
        ra, rb = {k: k for k in fa}, {k: k for k in fb}
    a_by, b_by = {ra[k]: k for k in fa}, {rb[k]: k for k in fb}
    out = []
    for rel in sorted(set(a_by) | set(b_by)):
        ka, kb = a_by.get(rel), b_by.get(rel)
        ha, hb = _hash(fa.get(ka)) if ka else None, _hash(fb.get(kb)) if kb else None
        if ha == hb:
            continue
        change = "added" if ka is None else "removed" if kb is None else "changed"
        out.append({"path": ka or kb, "relpath": rel, "a": ha, "b": hb, "change": change, "b_path": kb})
    return out


def _relative(files: Mapping[str, Any]) -> dict[str, str]:
    """Each path relative to the folder all of them share (A and B keep assets in other places)."""
    keys = list(files)
    if not keys:
        return {}
    if len(keys) == 1:
        return {keys[0]: os.path.basename(keys[0])}
    try:
        root = os.path.commonpath(keys)
    except ValueError:  # absolute and relative mixed
        return {k: k for k in keys}
    return {k: os.path.relpath(k, root) if root else k for k in keys}


def _param_changes(pa: Mapping[str, Any], pb: Mapping[str, Any]) -> list[dict[str, Any]]:
    a = {strip_wrapper_prefix(k): v for k, v in pa.items()}
    b = {strip_wrapper_prefix(k): v for k, v in pb.items()}
    out = []
    for name in [*a, *(k for k in b if k not in a)]:
        ha, hb = _hash(a.get(name)), _hash(b.get(name))
        if ha == hb:
            continue
        change = "added" if name not in a else "removed" if name not in b else "changed"
        out.append({"name": name, "max_abs": None, "a_hash": ha, "b_hash": hb, "change": change,
                    "a_dtype": _field(a.get(name), "dtype"), "b_dtype": _field(b.get(name), "dtype"),
                    "a_shape": _field(a.get(name), "shape"), "b_shape": _field(b.get(name), "shape")})
    return out


def _hash(meta: Any) -> str | None:
    if isinstance(meta, Mapping):
        for name in ("sha256", "hash"):
            if meta.get(name):
                return str(meta[name])
        return None
    return str(meta) if meta is not None else None


def _field(meta: Any, name: str) -> Any:
    return meta.get(name) if isinstance(meta, Mapping) else None


def _mapping(x: Any) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


# ----------------------------------------------------------------- runtime state


def runtime_findings(
    state_a: Mapping[str, Any], state_b: Mapping[str, Any], types: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Runtime differences that change numerics (error), may (warning), or rarely (info).

    ``state_*`` is a record's runtime state (see :func:`runtime_state`): the model part
    written by parity.records (training-mode submodules, per-parameter dtype and device,
    grad mode, threads, autocast...) and the process part from the snapshot.
    """
    out: list[dict[str, Any]] = []
    out.extend(_training(state_a, state_b, types or {}))
    out.extend(_placements(state_a, state_b, "parameters"))
    out.extend(_placements(state_a, state_b, "buffers"))
    for keys, severity, label in _FLAGS:
        va, vb = _flag(state_a, keys), _flag(state_b, keys)
        if va != vb and vb is not None:
            out.append(_finding(severity, keys[0], f"{label}: {va} in A, {vb} in B", "torch"))
    return out


#: (names of the setting in the model state, then in the snapshot's torch runtime;
#: severity of a difference; label). Threads change the order of reductions (rounding
#: level differences); grad mode costs speed and memory, not values.
_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("default_dtype",), "error", "default dtype"),
    (("autocast",), "error", "autocast"),
    (("float32_matmul_precision",), "warning", "float32 matmul precision"),
    (("cuda_matmul_allow_tf32",), "warning", "TF32 matmul"),
    (("grad_enabled",), "warning", "grad mode enabled"),
    (("deterministic_algorithms",), "info", "deterministic algorithms"),
    (("threads", "num_threads"), "info", "torch threads"),
)


def _flag(state: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for part in (_model(state), _torch(state)):
        for key in keys:
            if part.get(key) is not None:
                return part[key]
    return None


#: Module types that compute differently in training mode (dropout masks, batch statistics).
MODE_SENSITIVE = re.compile(r"Dropout|BatchNorm|InstanceNorm|RReLU|GroupNormTrain")


def _training(state_a: Mapping[str, Any], state_b: Mapping[str, Any], types: Mapping[str, str]) -> list[dict[str, Any]]:
    """B's submodules in training mode that were not in A; mode-sensitive ones named first.

    ``types`` maps module paths to class names (from the layer entries), so the finding can
    say which modules actually compute differently (Dropout, BatchNorm...).
    """
    ta = {strip_wrapper_prefix(m) for m in _model(state_a).get("training_modules") or []}
    new = [m for m in (strip_wrapper_prefix(m) for m in _model(state_b).get("training_modules") or []) if m not in ta]
    if not new:
        return []
    sensitive = [m for m in new if MODE_SENSITIVE.search(types.get(m, ""))]
    named = sensitive or new
    shown = ", ".join(f"{m or '<root>'}" + (f" ({types[m]})" if m in types else "") for m in named[:5])
    more = f" and {len(named) - 5} more" if len(named) > 5 else ""
    what = "of which compute differently in training" if sensitive else "in training mode"
    # Without Dropout/BatchNorm among them (e.g. a ModuleList rebuilt after .eval()) the
    # mode rarely matters, but custom forwards can read self.training: warn, not fail.
    unknown = [m for m in new if m not in types]
    severity = "error" if sensitive or unknown else "warning"
    finding = _finding(severity, "training_mode", f"{len(new)} submodule(s) in training mode in B, {what}: "
                       f"{shown}{more}; call model.eval()", named[0] or "<root>")
    finding["modules"] = new  # all of them: the probable cause checks the first divergent layer against it
    return [finding]


def _placements(state_a: Mapping[str, Any], state_b: Mapping[str, Any], what: str) -> list[dict[str, Any]]:
    """Parameters (or buffers) whose dtype (error) or device (warning) differs."""
    pa = {strip_wrapper_prefix(k): v for k, v in _mapping(_model(state_a).get(what)).items()}
    pb = {strip_wrapper_prefix(k): v for k, v in _mapping(_model(state_b).get(what)).items()}
    out = []
    for field_, severity in (("dtype", "error"), ("device", "warning")):
        changed = [n for n in pa if n in pb and _field(pa[n], field_) != _field(pb[n], field_)]
        if changed:
            n = changed[0]
            out.append(_finding(severity, f"{what}_{field_}", f"{len(changed)} {what} on another {field_} in B, e.g. "
                                f"{n}: {_field(pa[n], field_)} in A, {_field(pb[n], field_)} in B", n))
    return out


def _finding(severity: str, code: str, message: str, where: str) -> dict[str, Any]:
    # Module and parameter names come from the record: no control character may reach a terminal.
    return {"severity": severity, "code": code, "message": one_line(message), "where": one_line(where)}


def _model(state: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(state.get("model"))


def _torch(state: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(state.get("torch"))


def runtime_state(env: Mapping[str, Any]) -> dict[str, Any]:
    """``{"torch": {...}, "model": {...}}`` from a record's env.json runtime section."""
    runtime = _mapping(env.get("runtime"))
    return {"torch": dict(_mapping(runtime.get("torch"))), "model": dict(_mapping(runtime.get("model")))}
