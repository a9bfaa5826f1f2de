"""``parity.records.record``: run a target on its inputs and write a record directory."""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from parity.errors import ParityError, RecordError, TargetError
from parity.progress import ProgressEvent, ProgressFn, report
from parity.records import format as fmt
from parity.records.assets import assets_json
from parity.records.budget import (
    SizeBudget,
    default_max_size,
    format_size,
    header_entry_bytes,
    parse_size,
)
from parity.records.calibrate import noise_floors, other_thread_count
from parity.records.capture import LayerCapture, hookable, layer_selector
from parity.records.flatten import structure
from parity.records.runtime import model_runtime_state
from parity.records.stats import SAMPLE_SIZE
from parity.records.store import RecordWriter, location_text, store_for
from parity.records.writer import SHARD_BYTES, ShardWriter, write_safetensors
from parity.target import (
    LoadedTarget,
    Pipeline,
    TensorInputs,
    as_pipeline,
    iter_batches,
    load_inputs,
    load_target,
    model_input,
)
from parity.target.pipeline import postprocess_caller


@dataclass
class RecordResult:
    """What :func:`record` wrote. ``warnings`` are one-line notes (e.g. layers not hooked)."""

    path: Path
    manifest: dict[str, Any]
    layers: int
    batches: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    max_size: int | None = None  # the size limit in force (bytes)
    full_layers: list[str] | None = None  # --layers: the module paths stored in full
    estimated_bytes: int | None = None  # the record's size as projected after its first batch

    def to_json(self) -> dict[str, Any]:
        files = self.manifest.get("files", {})
        return {
            "schema": "parity.record_result/1", "path": location_text(self.path), "target": self.manifest.get("target"),
            "capture": self.manifest.get("capture"), "inputs": self.manifest.get("inputs"),
            "batches": self.batches, "layers": self.layers, "files": len(files),
            "bytes": sum(int(f["size"]) for f in files.values()), "seconds": self.seconds,
            "warnings": list(self.warnings), "max_size": self.max_size, "estimated_bytes": self.estimated_bytes,
            "full_layers": self.manifest.get("full_layers"),
            "full_modules": len(self.full_layers) if self.full_layers is not None else None,
        }


def record(target: str | LoadedTarget | Pipeline | Any, inputs: str | Path | list[Any] | None = None,
           out: str | Path | None = None, capture: str = "stats", batch_size: int | None = None,
           calibrate: bool = False, bench: bool = False, seed: int = 0, *, snapshot_env: bool = True,
           overwrite: bool = False, shard_bytes: int = SHARD_BYTES, max_size: int | str | None = None,
           progress: ProgressFn | None = None, layers: list[str] | tuple[str, ...] | None = None) -> RecordResult:
    """Record ``target`` (a TARGET spec, a :class:`Pipeline` or a bare ``nn.Module``) on
    ``inputs`` into the record ``out``: a folder, or a URL of a registered record store
    (:func:`parity.records.store.store_for`), written atomically: it appears complete or
    not at all.

    ``inputs``: an inputs file, a list of raw inputs (e.g. :func:`load_record_inputs` of
    another record) or None for the pipeline's example inputs. ``batch_size`` None means
    ``Pipeline.batch_size``. ``seed`` fixes the sample positions and seeds torch's RNG
    before each batch so stochastic layers repeat. ``snapshot_env=False`` skips the
    environment snapshot (env.json then holds only the runtime state), for a cheap
    capture that is only compared against. Runs under ``torch.no_grad()`` (not
    inference_mode: its tensors carry no version counter, which in-place detection needs).

    ``max_size`` (bytes, or a size such as ``"2G"``; None: the smaller of 20 GB and the
    free space minus 1 GB) bounds the record: the bytes are counted before they are
    written, the size is projected after every batch, and :class:`RecordSizeError` stops
    the record before it would grow past the limit, leaving nothing behind.
    ``progress`` gets a :class:`~parity.progress.ProgressEvent` after every batch (and a
    notice with the size estimate of a full capture after the first).
    ``layers`` (``--layers`` globs): full tensors for those modules only (:func:`_layer_patterns`).
    """
    if capture not in fmt.CAPTURE_LEVELS:
        raise RecordError(f"--capture {capture}: unknown level", fix="use outputs, stats or full")
    patterns, capture = _layer_patterns(layers, capture)
    if out is None:
        raise RecordError("no output directory given", fix="pass -o DIR")
    store = store_for(out)  # a place no store serves fails before the model loads
    store.check_create(out, overwrite=overwrite)  # so does a missing bucket or parity[s3]
    start = time.perf_counter()
    loaded = _as_loaded(target)
    if isinstance(inputs, tuple):
        inputs = list(inputs)
    items = inputs if isinstance(inputs, list) else load_inputs(inputs, loaded.pipeline)
    if not items:
        raise RecordError("no inputs to record", fix="pass a non-empty --inputs file")
    batches = list(iter_batches(items, batch_size or loaded.pipeline.batch_size))
    limit = parse_size(max_size) if isinstance(max_size, str) else max_size
    with store.create(out, overwrite=overwrite) as writer:
        limit, origin = (default_max_size(writer.free_space_folder()) if limit is None
                         else (int(limit), f"--max-size {max_size}"))
        budget = SizeBudget(limit, origin, Path(out), "targeted" if patterns else capture, len(batches), shard_bytes)
        session = _Session(writer, loaded, capture, seed, shard_bytes, budget, progress, patterns)
        session.run(batches)
        if calibrate:
            session.calibrate(batches)
        session.write(items, inputs, batches, snapshot_env)
        if bench:
            session.write_bench(items, batch_size or loaded.pipeline.batch_size)
        manifest = fmt.finalize_manifest(writer, session.manifest_fields(items, inputs, batches, calibrate, start))
    return RecordResult(path=Path(out), manifest=manifest, layers=len({e["key"] for e in session.entries}),
                        batches=len(batches), seconds=time.perf_counter() - start, warnings=session.warnings,
                        max_size=limit, estimated_bytes=session.estimate,
                        full_layers=session.full_paths if patterns else None)


def _layer_patterns(layers: list[str] | tuple[str, ...] | None, capture: str) -> tuple[list[str], str]:
    """(the ``--layers`` patterns, checked; the capture level the record says).

    ``layers`` (glob patterns on module paths, see :func:`~parity.records.capture.layer_selector`)
    targets the capture: the selected modules get full tensors and replay inputs, every
    other module stats. Such a record says ``"capture": "stats"`` and ``"full_layers":
    [patterns]`` in its manifest, so every reader of stats records reads it; ``capture``
    may be "stats" or "full" then.
    """
    if not layers:
        return [], capture
    if isinstance(layers, str):
        layers = [layers]
    patterns = [str(p) for p in layers]
    if any(not p.strip() for p in patterns):
        raise RecordError("--layers: an empty pattern", fix="give a glob on module paths, e.g. --layers 'encoder.layer.3'")
    if capture == "outputs":
        raise RecordError("--layers with --capture outputs: no layer is captured",
                          fix="use --capture full --layers PATTERN")
    return list(dict.fromkeys(patterns)), "stats"


def _as_loaded(target: str | LoadedTarget | Pipeline | Any) -> LoadedTarget:
    if isinstance(target, LoadedTarget):
        return target
    if isinstance(target, Pipeline):
        return LoadedTarget(pipeline=target, spec=target.name or "", kind="pipeline", load_seconds=0.0)
    if not isinstance(target, (str, Path)):  # a bare nn.Module from the Python API
        pipeline = as_pipeline("the target object", target)
        return LoadedTarget(pipeline=pipeline, spec=pipeline.name or "", kind="pipeline", load_seconds=0.0)
    return load_target(str(target))


def inputs_kind(items: list[Any]) -> str:
    """text | json | tensors | objects (the last cannot be re-read by B)."""
    import torch

    def is_tensorish(x: Any) -> bool:
        if isinstance(x, torch.Tensor):
            return True
        if isinstance(x, dict):
            return bool(x) and all(isinstance(v, torch.Tensor) for v in x.values())
        return isinstance(x, tuple) and bool(x) and all(isinstance(v, torch.Tensor) for v in x)

    if isinstance(items, TensorInputs) or all(is_tensorish(x) for x in items):
        return "tensors"
    if all(isinstance(x, str) for x in items):
        return "text"
    try:
        json.dumps(items, allow_nan=False)
    except (TypeError, ValueError):
        return "objects"
    return "json"


class _Session:
    """One record being written through ``out`` (its store's writer)."""

    def __init__(self, out: RecordWriter, loaded: LoadedTarget, capture: str, seed: int, shard_bytes: int,
                 budget: SizeBudget, progress: ProgressFn | None = None, patterns: list[str] | None = None) -> None:
        import torch

        self.out, self.loaded, self.capture, self.seed = out, loaded, capture, seed
        self.patterns = list(patterns or [])
        self.full_paths: list[str] = []  # the modules --layers selected
        self.budget, self.progress = budget, progress
        self.estimate: int | None = None
        self.pipeline = loaded.pipeline
        self.shard_bytes = shard_bytes
        self.entries: list[dict[str, Any]] = []
        self.module_inputs: list[dict[str, Any]] = []
        self.stage_tensors: list[tuple[str, Any]] = []
        self.stage_meta: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.why_not_hooked = hookable(self.pipeline.model)
        # The caller's state, taken before parity switches grad off for the run.
        self.runtime = model_runtime_state(self.pipeline.model, torch.is_grad_enabled())

    # -- running ---------------------------------------------------------------------------
    def run(self, batches: list[list[Any]]) -> None:
        import torch

        layers = self.capture != "outputs" and self.why_not_hooked is None
        if self.capture != "outputs" and self.why_not_hooked:
            self.warnings.append(f"layers not captured: {self.why_not_hooked}")
        # Stats capture writes only a few KB of samples per batch: no O_DIRECT probe, no thread.
        writer = ShardWriter(self.out.spool(fmt.ACTIVATIONS), fmt.ACTIVATIONS, shard_bytes=self.shard_bytes,
                             direct=None if self.capture == "full" or self.patterns else False,
                             on_shard=self.out.spooled) if layers else None
        hooks = LayerCapture(self.pipeline.model, self.capture, writer, self.seed, budget=self.budget,
                             full=layer_selector(self.patterns) if self.patterns else None) if writer else None
        if hooks is not None and self.patterns:
            self._check_selected(hooks)
        try:
            with torch.no_grad(), hooks or contextlib.nullcontext():
                for index, batch in enumerate(batches):
                    if hooks:
                        hooks.begin_batch(index)
                    self._add_stages(index, batch, self._run_batch(index, batch))
                    self._end_batch(index, len(batches), hooks)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        if writer is not None:
            writer.close()
        if hooks:
            hooks.resolve()
            self.entries, self.module_inputs = hooks.entries, hooks.module_inputs
            if self.patterns and not self.module_inputs:
                self.warnings.append(f"--layers {' '.join(self.patterns)}: the modules it selects never ran, "
                                     "so nothing was stored in full")

    def _check_selected(self, hooks: LayerCapture) -> None:
        """--layers must select at least one module: a typo would silently record stats only."""
        from parity.records.flatten import strip_wrapper_prefix

        paths = [strip_wrapper_prefix(p) for p, _m in self.pipeline.model.named_modules()]
        selected = layer_selector(self.patterns)
        self.full_paths = [p for p in paths if selected(p)]
        if not self.full_paths:
            shown = ", ".join(repr(p) for p in paths[1:9]) + (" ..." if len(paths) > 9 else "")
            raise RecordError(f"--layers {' '.join(self.patterns)}: matches no module of the model",
                              fix=f"use a glob on module paths such as {shown}")

    def _end_batch(self, index: int, total: int, hooks: LayerCapture | None) -> None:
        """Charge the batch's JSON to the size budget, project the record's size (stop when
        over the limit), and report progress."""
        if hooks:
            hooks.finish_batch()  # entries now, so their JSON can be measured
        if index == 0:
            described = (self.stage_meta[0], hooks.entries if hooks else [], hooks.module_inputs if hooks else [])
            self.budget.json_per_batch = len(json.dumps(described, default=str))
        projected = self.budget.end_batch()
        if index == 0:
            self.estimate = projected
            if self.capture == "full" or self.patterns:
                report(self.progress, ProgressEvent(
                    "record", 1, total, "batches", self.budget.written,
                    notice=f"{'targeted' if self.patterns else 'full'} capture: the record will take about {format_size(projected)} "
                           f"({format_size(projected / total)} per batch x {total} batches); "
                           f"size limit {format_size(self.budget.limit)} (--max-size)"))
        report(self.progress, ProgressEvent("record", index + 1, total, "batches", self.budget.written))

    def _run_batch(self, index: int, batch: list[Any]) -> dict[str, Any]:
        """Each stage's value for one batch, under torch's RNG seeded with seed + index."""
        stages: dict[str, Any] = {}
        with _seeded(self.seed + index):
            x = self._stage("preprocess", index, model_input, self.pipeline, batch)
            if isinstance(batch, TensorInputs) or self.pipeline.preprocess is None:
                stages["inputs"] = x
            else:
                stages["preprocess"] = x
            stages["model"] = self._stage("model", index, self.pipeline.call_model, x)
            if self.pipeline.postprocess is not None:
                post = postprocess_caller(self.pipeline.postprocess)
                stages["postprocess"] = self._stage("postprocess", index, post, stages["model"], x)
        return stages

    def _stage(self, stage: str, index: int, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ParityError:
            raise
        except Exception as exc:
            raise TargetError(f"{self.loaded.spec or 'target'}: {stage} failed on batch {index} "
                              f"({type(exc).__name__}: {exc})",
                              fix="check that the inputs are what the target expects") from exc

    def _add_stages(self, index: int, batch: list[Any], values: dict[str, Any]) -> None:
        meta: dict[str, Any] = {"batch": index, "size": len(batch), "stages": {}}
        for stage, value in values.items():
            meta["stages"][stage] = structure(value, partial(self._keep_stage, f"{index}/{stage}"))
        self.stage_meta.append(meta)

    def _keep_stage(self, prefix: str, path: str, t: Any) -> str:
        # A copy: postprocess or the caller may change the tensor in place afterwards.
        name = prefix + path
        self.budget.charge(t.numel() * t.element_size() + header_entry_bytes(name, t.dim()))
        self.stage_tensors.append((name, t.detach().to("cpu", copy=True).contiguous()))
        return name

    def calibrate(self, batches: list[list[Any]]) -> None:
        """Add each layer entry's ``noise_floor`` (max abs error across thread counts)."""
        import torch

        if self.why_not_hooked or self.capture == "outputs":
            self.warnings.append("--calibrate skipped: no layers are captured (noise floors are per layer)")
            return

        def run_batch(i: int) -> None:
            with torch.no_grad(), _seeded(self.seed + i):
                self.pipeline.call_model(model_input(self.pipeline, batches[i]))

        floors = noise_floors(self.pipeline.model, run_batch, len(batches), self.progress)
        for entry in self.entries:
            entry["noise_floor"] = floors.get((entry["batch"], entry["key"]))
        self.calibration = {"threads": torch.get_num_threads(),
                            "other_threads": other_thread_count(torch.get_num_threads())}

    # -- writing ----------------------------------------------------------------------------
    def write(self, items: list[Any], source: Any, batches: list[list[Any]], snapshot_env: bool) -> None:
        kind = inputs_kind(items)
        self.out.write_json(fmt.INPUTS, {
            "kind": kind, "direct": isinstance(items, TensorInputs),
            "source": str(source) if isinstance(source, (str, Path)) else None,
            "count": len(items), "batch_sizes": [len(b) for b in batches],
            "items": list(items) if kind in ("text", "json") else None,
        })
        with self.out.open(fmt.STAGES) as f:
            write_safetensors(f, self.stage_tensors)
        self.out.write_json(fmt.STAGES_META, {"batches": self.stage_meta})
        if self.capture != "outputs" and not self.why_not_hooked:
            self.out.write_json(fmt.LAYERS, self.entries)
        if (self.capture == "full" or self.patterns) and not self.why_not_hooked:
            self.out.write_json(fmt.MODULE_INPUTS, self.module_inputs)
        self.out.write_json(fmt.ASSETS, assets_json(self.pipeline.assets, self.pipeline.model))
        self.out.write_json(fmt.ENV, self._env(snapshot_env))

    def _env(self, snapshot_env: bool) -> dict[str, Any]:
        env: dict[str, Any] = {"schema": "parity.snapshot/1", "meta": {"partial": True}, "runtime": {}}
        if snapshot_env:
            from parity.env import snapshot

            env = snapshot(runtime=True)
        if not isinstance(env.get("runtime"), dict):
            env["runtime"] = {}
        env["runtime"]["model"] = self.runtime
        return env

    def write_bench(self, items: list[Any], batch_size: int) -> None:
        try:
            from parity.benchmark import bench_for_record
        except ImportError as exc:
            raise RecordError("--bench: this parity has no bench support (parity.benchmark.bench_for_record)",
                              fix="record without --bench, or install a complete parity") from exc
        self.out.write_json(fmt.BENCH, bench_for_record(self.pipeline, items, batch_size, self.progress))

    def manifest_fields(self, items: list[Any], source: Any, batches: list[list[Any]], calibrated: bool,
                        start: float) -> dict[str, Any]:
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "target": self.loaded.spec or None, "target_kind": self.loaded.kind, "name": self.pipeline.name,
            "inputs": {"source": str(source) if isinstance(source, (str, Path)) else None,
                       "kind": inputs_kind(items), "count": len(items)},
            "capture": self.capture, "full_layers": self.patterns or None,
            "batch_size": len(batches[0]), "batches": len(batches),
            "seed": self.seed, "sample_size": SAMPLE_SIZE, "hash": "mlh32-sha256",
            "layers_captured": self.capture != "outputs" and not self.why_not_hooked,
            "calibrated": calibrated, "calibration": getattr(self, "calibration", None),
            "tolerances": None, "warnings": list(self.warnings),
            "timings": {"load_seconds": self.loaded.load_seconds, "record_seconds": time.perf_counter() - start},
        }


@contextlib.contextmanager
def _seeded(seed: int) -> Any:
    """torch's RNG seeded with ``seed`` inside, the caller's RNG state restored after."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
