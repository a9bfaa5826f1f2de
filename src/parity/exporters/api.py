"""``parity.export()``: export a TARGET, prove the artifact equals eager, optionally bench both."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from parity._io import atomic_write_bytes
from parity.errors import ExportError, ParityError
from parity.exporters import _inputs
from parity.exporters.check import CheckTolerance, check_case, submodule_checks
from parity.exporters.result import CheckResult, ExportResult, Finding
from parity.progress import ProgressEvent, ProgressFn, report
from parity.target.formats import ArtifactFormat, FormatSuffixes
from parity.target.formats import get as get_format
from parity.target.formats import names as format_names
from parity.target.formats.job import ExportJob
from parity.target.formats.model_io import (
    ArtifactMeta,
    encode_example,
    flatten_outputs,
    split_inputs,
)
from parity.target.pipeline import call_model

#: format -> suffixes accepted for -o: a live view of :mod:`parity.target.formats`
FORMATS = FormatSuffixes()
#: what ``--method`` may say (formats whose ``methods`` is empty ignore it)
METHODS = ("trace", "script")
#: input batches (beyond the example) the check also runs
MAX_EXTRA_BATCHES = 3


def export(target: Any, format: str, out: str | os.PathLike[str], *, method: str = "trace",
           static: bool = False, inputs: Any = None, check: bool = True, bench: bool = False,
           atol: float | None = None, rtol: float | None = None,
           progress: ProgressFn | None = None) -> ExportResult:
    """Export ``target`` to ``out`` in ``format`` and check it against eager.

    ``target``: a TARGET spec, a ``LoadedTarget`` or a ``Pipeline``. ``inputs``: an
    ``--inputs`` file, a list of raw inputs, or None for ``Pipeline.example_inputs``;
    the first batch (``Pipeline.batch_size`` items) is the export example. ``method``
    applies to torchscript only. Batch (and token sequence) dimensions are dynamic
    unless ``static``. ``atol``/``rtol`` None: the compare engine's per-dtype defaults
    (x10 for float outputs of onnx and aoti, which run their own kernels).
    The artifact is written atomically even when the check fails (``result.ok`` false).
    ``progress``: called as the export and each check case finish (:mod:`parity.progress`).
    """
    fmt, out_path = _validate(format, out, method)
    _validate_tolerances(atol, rtol)
    spec, pipeline = _resolve(target)
    batches = _model_batches(pipeline, inputs)
    job = _job(pipeline, spec, fmt, method, static, batches[0])
    started = time.perf_counter()
    report(progress, ProgressEvent("export", 0, 1, "artifact"))
    data, findings = fmt.export(job)
    report(progress, ProgressEvent("export", 1, 1, "artifact", bytes_written=len(data)))
    export_seconds = time.perf_counter() - started
    atomic_write_bytes(out_path, data)
    findings = _pre_findings(job, batches[0]) + findings
    result = ExportResult(
        target=spec, format=format, out=str(out_path), method=job.meta.method,
        static=static, size_bytes=len(data), export_seconds=export_seconds, input_names=list(job.names),
        output_names=list(job.meta.output_names), dynamic=job.dims, findings=findings)
    if check:
        result.check = _check(job, fmt, out_path, batches, atol, rtol, progress)
    if bench:
        from parity.exporters.side_by_side import side_by_side

        result.bench = side_by_side(target, pipeline, out_path, inputs, job)
    return result


def _validate(format: str, out: str | os.PathLike[str], method: str) -> tuple[ArtifactFormat, Path]:
    """(the format, the output path) once both are usable and the format's toolchain is here."""
    if format not in format_names():
        raise ExportError(f"--format {format!r}: unknown format", fix=f"use one of {', '.join(format_names())}")
    fmt = get_format(format)
    if method not in METHODS:
        raise ExportError(f"--method {method!r}: unknown method", fix="use --method trace or --method script")
    path = Path(out)
    if path.suffix.lower() not in fmt.suffixes:
        raise ExportError(f"-o {path}: a {format} artifact must end in {' or '.join(fmt.suffixes)}",
                          fix=f"name the output e.g. model{fmt.suffixes[0]}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"-o {path}: folder {parent} does not exist", fix="create it or choose another -o path")
    if path.is_dir():
        raise ExportError(f"-o {path}: is a directory", fix="give a file name")
    if fmt.require is not None:  # fail before loading the model when the toolchain is missing
        fmt.require()
    return fmt, path


def _validate_tolerances(atol: float | None, rtol: float | None) -> None:
    import math

    for flag, value in (("--atol", atol), ("--rtol", rtol)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ExportError(f"{flag} {value}: must be a finite number >= 0", fix=f"pass e.g. {flag} 1e-4")


def _resolve(target: Any) -> tuple[str | None, Any]:
    """(spec, Pipeline) from a spec, a LoadedTarget or a Pipeline."""
    from parity.target import LoadedTarget, Pipeline, as_pipeline, load_target

    if isinstance(target, (str, os.PathLike)):
        target = load_target(str(target))
    if isinstance(target, LoadedTarget):
        if target.kind in format_names():
            raise ExportError(f"{target.spec}: is already an exported artifact ({target.kind})",
                              fix="export from the model's Python TARGET (file.py:build or a model folder)")
        return target.spec, target.pipeline
    if isinstance(target, Pipeline):
        return target.name, target
    return None, as_pipeline("target", target)


def _model_batches(pipeline: Any, inputs: Any) -> list[Any]:
    """Model inputs of the first batches: [example, other batches...] (preprocess applied)."""
    from parity.target import iter_batches, load_inputs

    if isinstance(inputs, (str, os.PathLike)) or inputs is None:
        items = load_inputs(None if inputs is None else Path(inputs), pipeline)
    else:
        items = list(inputs)
    if not items:
        raise ExportError("no inputs to export with", fix="pass --inputs FILE or give the Pipeline example_inputs")
    out = []
    for batch in iter_batches(items, max(1, int(pipeline.batch_size or 8))):
        out.append(_preprocess(pipeline, batch))
        if len(out) > MAX_EXTRA_BATCHES:
            break
    return out


def _preprocess(pipeline: Any, batch: Any) -> Any:
    from parity.target import model_input

    try:
        return model_input(pipeline, batch)
    except ParityError:
        raise
    except Exception as exc:
        raise ExportError(f"the target's preprocess failed on the inputs: {type(exc).__name__}: {exc}",
                          fix="check that --inputs suit the target's preprocess") from exc


def _job(pipeline: Any, spec: str | None, fmt: ArtifactFormat, method: str, static: bool,
         example: Any) -> ExportJob:
    """Resolve names, dynamic dims, outputs and metadata for one export."""
    import torch

    model = pipeline.model
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{spec}: the model is a {type(model).__name__}, not a torch.nn.Module",
                          fix="export from a TARGET whose model is a torch.nn.Module")
    model.eval()
    names, tensors, call = split_inputs(example)
    dims = {} if static else _inputs.dynamic_dims(names, tensors)
    export_tensors = tensors if static else _inputs.batch_of_at_least_two(tensors, dims, names)
    output_names, single = _outputs(model, names, tensors, call)
    meta = ArtifactMeta(format=fmt.name, input_names=names, call=call, output_names=output_names,
                        single_output=single, dynamic=dims, source=spec,
                        method=method if fmt.methods else None,
                        torch_version=torch.__version__, example_b64=encode_example(names, tensors))
    return ExportJob(model=model, names=names, tensors=export_tensors, call=call, dims=dims,
                     method=method, meta=meta)


def _outputs(model: Any, names: list[str], tensors: list[Any], call: str) -> tuple[list[str], bool]:
    """(flattened output names, whether the model returns one bare tensor)."""
    import torch

    from parity.target.formats.model_io import join_inputs

    with torch.no_grad():
        try:
            out = call_model(model, join_inputs(names, tensors, call))
        except Exception as exc:
            raise ExportError(f"the model failed on the example inputs: {type(exc).__name__}: {exc}",
                              fix="check the example inputs (or --inputs) against the model") from exc
    flat = flatten_outputs(out)
    return [n for n, _ in flat], isinstance(out, torch.Tensor)


def _pre_findings(job: ExportJob, example: Any) -> list[Finding]:
    """Facts about the export plan itself (static shapes, batch of 1 widened)."""
    findings = []
    if not job.dims:
        findings.append(Finding("info", "static", "static export: the artifact accepts only the example's "
                                "shapes; the check runs on those shapes only"))
    elif any(int(a.shape[0]) != int(b.shape[0]) for a, b in zip(split_inputs(example)[1], job.tensors)):
        findings.append(Finding("info", "batch-widened", "the example batch has 1 row; exported with 2 "
                                "(rows repeated) so that the batch dimension stays dynamic"))
    return findings


def _check(job: ExportJob, fmt: ArtifactFormat, out_path: Path, batches: list[Any],
           atol: float | None, rtol: float | None, progress: ProgressFn | None = None) -> CheckResult:
    """Load the written artifact and compare it with eager on every case."""
    from parity.target.artifacts import load_artifact

    artifact = load_artifact(out_path).model
    example_names, example_tensors, call = split_inputs(batches[0])
    cases = [("example", example_tensors)]
    for i, batch in enumerate(batches[1:], start=2):
        cases.append((f"inputs batch {i}", split_inputs(batch)[1]))
    if job.dims:
        cases.extend(_inputs.shape_variants(example_names, example_tensors, job.dims))
    else:
        cases = [c for c in cases if _same_shapes(c[1], example_tensors)]
    tol = CheckTolerance.for_format(fmt.name, atol, rtol)
    checked = []
    for done, (label, tensors) in enumerate(cases, start=1):
        checked.append(check_case(label, job.model, artifact, example_names, tensors, call, tol))
        report(progress, ProgressEvent("export check", done, len(cases), "cases"))
    result = CheckResult(checked, tolerance=tol)
    if fmt.named_submodules:
        prefix = "model." if job.method == "trace" else ""
        scripted = artifact.artifact.runner
        result.submodules = submodule_checks(job.model, scripted, prefix, batches[0], tol)
    return result


def _same_shapes(a: list[Any], b: list[Any]) -> bool:
    return len(a) == len(b) and all(tuple(x.shape) == tuple(y.shape) for x, y in zip(a, b))
