"""``verify`` (a record vs a live TARGET in this environment) and ``compare`` (two records).

Verify records B into a temporary directory with A's capture level, batch size and
inputs, then compares the two records like ``compare`` does; with capture=full it also
re-runs B's divergent modules on A's recorded inputs to tell the layer that introduces
an error from those that inherit it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity._text import one_line
from parity.comparison import findings, layers, stages
from parity.comparison.result import VerifyResult, decide_verdict
from parity.comparison.tolerances import TolerancePolicy, policy_from, strip_wrapper_prefix
from parity.errors import ParityError
from parity.progress import ProgressFn, relabel
from parity.records.format import INPUTS, MODULE_INPUTS, Record, read_record

if TYPE_CHECKING:
    from parity.target import LoadedTarget


def compare(
    dir_a: str | os.PathLike[str],
    dir_b: str | os.PathLike[str],
    *,
    atol: float | None = None,
    rtol: float | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
) -> VerifyResult:
    """Compare record B against reference record A. Raises RecordError for a bad record.

    Without a live model, which layer *introduces* an error cannot be decided: every
    ``introduced`` is null and the result says so in ``notes``.
    """
    rec_a, rec_b = read_record(dir_a), read_record(dir_b)
    policy = policy_from(rec_a.manifest.get("tolerances"), atol, rtol, overrides)
    result = compare_records(rec_a, rec_b, policy, b_info={"record": rec_b.location, "target": rec_b.target})
    if result.first_divergent_layer:
        result.notes.append("introduced vs inherited needs a live model: run `parity verify` with the target in B")
    _explain(result, rec_a)
    result.targeted_capture = _next_record(rec_a, result)
    decide_verdict(result)
    return result


def verify(
    record_dir: str | os.PathLike[str],
    target: str | LoadedTarget | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    max_slowdown: float | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    progress: ProgressFn | None = None,
) -> VerifyResult:
    """Re-run ``target`` (default: the one A recorded) here and check it against A's record.
    ``progress`` (parity.progress) hears of every batch of B's run and every bench call.

    ``max_slowdown`` is a fraction (0.1 = 10% slower allowed); when given, A's baseline
    benchmark (``parity record --bench``) is re-measured here and a significant slowdown
    fails the verdict. Raises RecordError/TargetError/InputsError for user errors.
    """
    rec_a = read_record(record_dir)
    policy = policy_from(rec_a.manifest.get("tolerances"), atol, rtol, overrides)
    from parity.target import LoadedTarget, load_target

    if isinstance(target, LoadedTarget):  # already loaded (an artifact in parity's C++ runner)
        spec, loaded = target.spec, target
    else:
        spec = _target_spec(rec_a, target)
        loaded = load_target(spec)
    inputs = _record_inputs(rec_a)
    with tempfile.TemporaryDirectory(prefix="parity-verify-") as tmp:
        rec_b = _record_b(rec_a, loaded, inputs, Path(tmp) / "b", relabel(progress, "verify"))
        result, rows = _compare_records(rec_a, rec_b, policy, {"record": None, "target": spec})
        _classify(rec_a, result, rows, loaded.pipeline)
    _explain(result, rec_a)
    result.targeted_capture = _next_record(rec_a, result)
    if max_slowdown is not None:
        result.performance = _performance(rec_a, loaded.pipeline, inputs, max_slowdown, progress)
    decide_verdict(result)
    return result


def compare_records(rec_a: Record, rec_b: Record, policy: TolerancePolicy, *, b_info: dict[str, Any]) -> VerifyResult:
    """Sections a-g of the report for two open records (the verdict is left to the caller)."""
    return _compare_records(rec_a, rec_b, policy, b_info)[0]


def _compare_records(
    rec_a: Record, rec_b: Record, policy: TolerancePolicy, b_info: dict[str, Any]
) -> tuple[VerifyResult, list[layers.LayerRow]]:
    result = VerifyResult(a={"record": rec_a.location, "target": rec_a.target}, b=b_info, capture=rec_a.capture)
    if rec_b.capture != rec_a.capture:
        result.notes.append(one_line(f"A was recorded with capture={rec_a.capture}, B with capture={rec_b.capture}"))
    for side, rec in (("A", rec_a), ("B", rec_b)):  # --layers: which modules hold whole tensors
        layers_of = rec.manifest.get("full_layers")
        if layers_of and (side == "A" or layers_of != rec_a.manifest.get("full_layers")):
            result.notes.append(one_line(f"{side}'s record holds full tensors and replay inputs for the modules "
                                         f"--layers {' '.join(map(str, layers_of))} selects, stats elsewhere"))
    if _inputs_differ(rec_a, rec_b):
        result.notes.append("A and B were recorded on different inputs: differences below may only reflect that")
    if findings.env_is_partial(rec_a.env) or findings.env_is_partial(rec_b.env):
        result.notes.append("no environment diff: a record was made without an environment snapshot")
    else:
        result.env_diff = findings.env_diff(rec_a.env, rec_b.env)
    result.assets = findings.assets_diff(rec_a.assets, rec_b.assets, known_a=findings.weights_known(rec_a.assets, rec_a),
                                         known_b=findings.weights_known(rec_b.assets, rec_b))
    if result.assets.get("note"):
        result.notes.append(str(result.assets["note"]))
    types = {strip_wrapper_prefix(str(e.get("module"))): str(e.get("type")) for e in rec_b.layers}
    result.runtime = findings.runtime_findings(
        findings.runtime_state(rec_a.env), findings.runtime_state(rec_b.env), types)
    result.stages = stages.compare_stages(rec_a, rec_b, policy)
    result.first_divergent_stage = stages.first_divergent_stage(result.stages)
    _suspects_into(result)
    rows = _layers_into(result, rec_a, rec_b, policy)
    result.predictions = stages.predictions(rec_a, rec_b)
    result.tolerances = policy.to_json()
    return result, rows


def _inputs_differ(rec_a: Record, rec_b: Record) -> bool:
    """True when both records list their raw inputs (text/JSON) and the lists differ."""
    if not (rec_a.has(INPUTS) and rec_b.has(INPUTS)):
        return False
    ia, ib = rec_a.json(INPUTS), rec_b.json(INPUTS)
    if not (isinstance(ia, dict) and isinstance(ib, dict)):
        return False
    return bool(ia.get("count") != ib.get("count") or (ia.get("items") is not None and ib.get("items") is not None
                                                       and ia["items"] != ib["items"]))


def _suspects_into(result: VerifyResult) -> None:
    """On the first divergent stage, the asset files and environment items that can explain it.

    Environment items say which stages they plausibly touch (``stages``); any changed asset
    file is a suspect (tokenizer files feed preprocess, weights feed the model).
    """
    stage = next((s for s in result.stages if s["stage"] == result.first_divergent_stage), None)
    if stage is None:
        return
    files = [one_line(f"asset {f['path']} ({f['change']})") for f in result.assets.get("files", [])]
    env = [one_line(f"{i.get('category')} {i.get('name')} {i.get('a')} -> {i.get('b')}")
           for i in result.env_diff.get("items", []) if stage["stage"] in (i.get("stages") or [])]
    stage["suspects"] = files + env


def _layers_into(result: VerifyResult, rec_a: Record, rec_b: Record, policy: TolerancePolicy) -> list[layers.LayerRow]:
    rows, only_b = layers.compare_layers(rec_a, rec_b, policy)
    first = layers.first_divergent(rows)
    result.layers = [r.to_json() for r in rows]
    result.first_divergent_layer = first.key if first else None
    result.only_a = [r.key for r in rows if r.status == "only_a"]
    result.only_b = only_b
    result.error_growth = layers.error_growth(rows, first)
    return rows


def _classify(rec_a: Record, result: VerifyResult, rows: list[layers.LayerRow], pipeline: Any) -> None:
    """Fill ``introduced`` on divergent layers by replaying B's modules (capture=full, or
    the modules a ``--layers`` record stored in full)."""
    if not result.first_divergent_layer:
        return
    if rec_a.capture != "full" and not rec_a.has(MODULE_INPUTS):
        result.notes.append("introduced vs inherited needs a record made with --capture full "
                            "(or --capture full --layers PATTERN around the first divergent layer)")
        return
    model = getattr(pipeline, "model", None)
    if model is None or not hasattr(model, "named_modules"):
        result.notes.append("introduced vs inherited needs an eager torch.nn.Module target")
        return
    from parity.comparison.replay import classify
    from parity.records import load_module_inputs
    from parity.records.access import has_module_inputs

    def inputs_of(rec: Record, entry: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return load_module_inputs(rec, str(entry["key"]), int(entry.get("batch", 0)))

    def stored(rec: Record, entry: dict[str, Any]) -> bool:
        return has_module_inputs(rec, str(entry["key"]), int(entry.get("batch", 0)))

    replay = classify(rec_a, rows, model, inputs_of, None if rec_a.capture == "full" else stored)
    result.notes.extend(replay.notes)
    result.api_changes = replay.api_changes
    result.layers = [r.to_json() for r in rows]
    first = next((r for r in rows if r.introduced), None)
    result.first_introducing_layer = first.key if first else None
    result.error_growth = layers.error_growth(rows, layers.first_divergent(rows))


def _explain(result: VerifyResult, rec_a: Record) -> None:
    """Fill ``probable_cause`` from the sections (see :mod:`parity.comparison.cause`)."""
    from parity.comparison.cause import probable_cause

    assets = rec_a.assets
    files, params, buffers = (assets.get(k) for k in ("files", "params", "buffers"))
    compared = {"files": len(files) if isinstance(files, dict) else 0,
                "weights": (len(params) if isinstance(params, dict) else 0)
                + (len(buffers) if isinstance(buffers, dict) else 0)}
    result.probable_cause = probable_cause(result, compared)


def _next_record(rec_a: Record, result: VerifyResult) -> dict[str, Any] | None:
    """After a divergence a stats record cannot localise: the targeted record to make on A."""
    from parity.comparison.targeting import suggest

    return suggest(rec_a, result)


def _target_spec(rec_a: Record, target: str | None) -> str:
    if target:
        return str(target)
    # A record never chooses code: only a relative .py file here, outside the record.
    from parity.target.policy import recorded_target

    return recorded_target(rec_a.manifest.get("target"), rec_a.where("manifest.json"), rec_a.location).spec


def _record_inputs(rec_a: Record) -> Any:
    from parity.records import load_record_inputs

    return load_record_inputs(rec_a)


def _record_b(rec_a: Record, loaded: Any, inputs: Any, out: Path, progress: ProgressFn | None = None) -> Record:
    """Record B with A's inputs, capture level and batch size; return it opened."""
    from parity.records import record

    batch_size, seed = rec_a.manifest.get("batch_size"), rec_a.manifest.get("seed", 0)
    # B's environment snapshot costs seconds; it is only worth it when A has one to diff.
    record(loaded, inputs, out=out, capture=rec_a.capture, batch_size=batch_size if isinstance(batch_size, int) else None,
           seed=seed if isinstance(seed, int) else 0, snapshot_env=not findings.env_is_partial(rec_a.env),
           progress=progress, max_size=_room_for_b(rec_a, out), layers=rec_a.manifest.get("full_layers"))
    return read_record(out, verify_hashes=False)


def _room_for_b(rec_a: Record, out: Path) -> int:
    """B's record holds what A's holds: never cap it below twice A's size (verify has no
    ``--max-size``; A's record already shows how large the capture is)."""
    from parity.records.budget import default_max_size

    files = rec_a.manifest.get("files") or {}
    size_a = sum(int(f.get("size") or 0) for f in files.values() if isinstance(f, dict))
    return max(default_max_size(out.parent)[0], 2 * size_a + (256 << 20))


def _performance(rec_a: Record, pipeline: Any, inputs: Any, max_slowdown: float,
                 progress: ProgressFn | None = None) -> dict[str, Any]:
    baseline = rec_a.bench
    if baseline is None:
        raise ParityError(f"{rec_a.path}: the record has no bench.json, so --max-slowdown has nothing to compare to",
                          fix="record with `parity record --bench`, or leave out --max-slowdown")
    from parity.benchmark import verify_performance

    return dict(verify_performance(pipeline, inputs, baseline, max_slowdown, progress))
