"""``--runner cpp`` and ``--check-cpp``: the CLI side of parity's C++ runner.

The shared command modules (export, verify, bench) each carry one option and one call
into this module; the logic lives here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import click

from parity.errors import ParityError
from parity.progress import ProgressFn

RUNNERS = ("python", "cpp")

runner_option = click.option(
    "--runner", type=click.Choice(RUNNERS), default="python", show_default=True,
    help="Where an artifact TARGET runs: in this Python process, or in parity's C++ runner "
         "(libtorch alone, no Python interpreter; built on first use; TorchScript and AOTInductor).")

check_cpp_option = click.option(
    "--check-cpp", is_flag=True,
    help="Also run the artifact in parity's C++ runner (no Python) and check it against eager "
         "(torchscript and aoti; needs a C++ compiler).")


def cpp_target_or_spec(target: str | None, runner: str, progress: ProgressFn | None = None) -> Any:
    """``target`` unchanged for ``--runner python``; the artifact as a C++-run LoadedTarget
    for ``--runner cpp`` (a TARGET is then required and must be an artifact)."""
    if runner != "cpp":
        return target
    if not target:
        raise ParityError("--runner cpp needs TARGET: the exported artifact to run",
                          fix="pass the .pt or .pt2 file after the record, e.g. `parity verify rec/ model.pt --runner cpp`")
    from parity.runner import cpp_target

    return cpp_target(target, progress)


def verify_runner_option(command: Callable[..., int]) -> Callable[..., int]:
    """Add ``--runner`` to ``parity verify``: with ``cpp``, TARGET (an artifact) runs in the
    C++ runner, so B's record is what the Python-free process computes."""

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> int:
        kwargs["target"] = cpp_target_or_spec(kwargs.get("target"), kwargs.pop("runner"))
        try:
            return command(**kwargs)
        finally:
            _close(kwargs["target"])

    return runner_option(wrapper)


def _close(target: Any) -> None:
    """End the runner process behind a C++-run LoadedTarget (anything else: nothing)."""
    model = getattr(getattr(target, "pipeline", None), "model", None)
    call: Any = getattr(getattr(model, "artifact", None), "runner", None)
    close = getattr(call, "close", None)
    if close is not None:
        close()


# ---------------------------------------------------------------- export --check-cpp


def check_cpp(target: str, artifact: str, fmt: str, inputs: str | None, atol: float | None,
              rtol: float | None, progress: ProgressFn | None = None) -> Any:
    """Eager vs the artifact run in the C++ runner, on the cases the export check uses
    (example, other input batches, other batch sizes and lengths): a ``CheckResult``.

    The eager model is loaded again from TARGET (export() does not hand it out); the
    artifact is never loaded in Python.
    """
    from parity.exporters import _inputs
    from parity.exporters.api import _model_batches, _resolve
    from parity.exporters.check import CheckTolerance, check_case
    from parity.exporters.result import CheckResult
    from parity.progress import ProgressEvent, report
    from parity.runner import cpp_model
    from parity.target.formats.model_io import split_inputs

    _, pipeline = _resolve(target)
    batches = _model_batches(pipeline, inputs)
    model = cpp_model(artifact, progress)
    try:
        names, tensors, call = split_inputs(batches[0])
        cases: list[tuple[str, Sequence[Any]]] = [("example", tensors)]
        cases += [(f"inputs batch {i}", split_inputs(b)[1]) for i, b in enumerate(batches[1:], start=2)]
        meta = model.artifact.meta
        dims = dict(meta.dynamic) if meta is not None else {}
        if dims:
            cases.extend(_inputs.shape_variants(names, tensors, dims))
        else:
            cases = [c for c in cases if [tuple(t.shape) for t in c[1]] == [tuple(t.shape) for t in tensors]]
        tol = CheckTolerance.for_format(fmt, atol, rtol)
        checked = []
        for done, (label, case) in enumerate(cases, start=1):
            checked.append(check_case(label, pipeline.model, model.artifact, names, case, call, tol))
            report(progress, ProgressEvent("C++ runner check", done, len(cases), "cases"))
        result = CheckResult(checked, tolerance=tol)
        return result, _process_facts(model)
    finally:
        model.artifact.runner.close()


def _process_facts(model: Any) -> dict[str, Any]:
    process = model.artifact.runner.process
    return {"runner": "cpp", "pid": process.pid, "libpython_mapped": process.libpython_mapped,
            "load_seconds": process.load_seconds}


def prepare_check_cpp(fmt: str, progress: ProgressFn | None = None) -> None:
    """Refuse ``--check-cpp`` for a format the runner does not load, and build the runner
    (or say why not) before the export spends its time."""
    from parity.runner import FORMATS, RunnerError, executable

    if fmt not in FORMATS:
        raise RunnerError(f"--check-cpp: the C++ runner loads {' and '.join(FORMATS)} artifacts, not {fmt}",
                          fix="use --format torchscript or --format aoti, or leave out --check-cpp")
    executable(progress)


def export_check_cpp(doc: dict[str, Any], target: str, inputs: str | None, atol: float | None,
                     rtol: float | None, progress: ProgressFn | None = None) -> bool:
    """Run the C++ check after ``parity export`` wrote ``doc["out"]``; adds ``check_cpp``
    to the export JSON and returns whether it passed."""
    from parity.runner import runner_format

    runner_format(doc["out"])  # refuse onnx / torch.export before loading the model again
    result, facts = check_cpp(target, doc["out"], doc["format"], inputs, atol, rtol, progress)
    doc["check_cpp"] = {**result.to_json(), **facts}
    doc["ok"] = bool(doc["ok"] and result.passed)
    return bool(result.passed)


def check_cpp_report(check: dict[str, Any]) -> Any:
    from parity.report.terminal.runner import check_cpp_report as report

    return report(check)


# ---------------------------------------------------------------- bench --runner cpp

#: bench flags that mean nothing inside the C++ runner
_BENCH_PYTHON_ONLY = ("against", "processes", "scenario", "qps", "find_max_qps", "p99_ms", "min_iters")


def bench_runner_option(command: Callable[..., int]) -> Callable[..., int]:
    """Add ``--runner`` to ``parity bench``: with ``cpp``, time the artifact in the C++
    runner (``--concurrency`` levels of C++ client threads) instead of the command's own flow."""

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> int:
        if kwargs.pop("runner") != "cpp":
            return command(**kwargs)
        return run_bench_cpp(kwargs)

    return runner_option(wrapper)


def run_bench_cpp(kwargs: dict[str, Any]) -> int:
    """``parity bench ARTIFACT --runner cpp``: one timing run per concurrency level."""
    from parity.benchmark.load import check_levels, parse_duration, parse_levels
    from parity.cli._common import EXIT_OK, check_output_file, emit_json, show
    from parity.cli._progress import progress_for

    given = [k for k in _BENCH_PYTHON_ONLY if kwargs.get(k) not in (None, False, 10.0)]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ParityError(f"{flag} does not apply with --runner cpp (the runner times its own C++ threads)",
                          fix="leave it out, or bench in Python (--runner python)")
    check_output_file(kwargs.get("output"))
    duration = parse_duration(kwargs["duration"]) if kwargs.get("duration") else (kwargs.get("min_time") or 2.0)
    levels = check_levels(parse_levels(kwargs["concurrency"]) if kwargs.get("concurrency") else [1], duration)
    with progress_for(kwargs["as_json"]) as progress:
        doc = bench_cpp(kwargs["target"], kwargs.get("inputs"), kwargs.get("batch_size"), kwargs.get("threads"),
                        duration, levels, progress)
    if kwargs.get("output"):
        from parity._io import atomic_write_json

        atomic_write_json(kwargs["output"], doc)
    if kwargs["as_json"]:
        emit_json(doc)
    else:
        show(bench_cpp_report(doc))
    return EXIT_OK



def bench_cpp(target: str, inputs: str | None, batch_size: int | None, threads: int | None,
              min_time: float | None, levels: Sequence[int] | None,
              progress: ProgressFn | None = None) -> dict[str, Any]:
    """Time the artifact inside the C++ runner: N client threads sharing one loaded model
    per level (no GIL), ``min_time`` seconds each. ``threads``: libtorch intra-op threads."""
    from parity.runner import cpp_target, time_artifact
    from parity.target import iter_batches, load_inputs, model_input
    from parity.target.formats.model_io import split_inputs

    loaded = cpp_target(target, progress)
    pipeline = loaded.pipeline
    try:
        items = load_inputs(inputs, pipeline)
        size = int(batch_size or pipeline.batch_size or 8)
        batch = next(iter(iter_batches(_cycle(items, size), size)))
        names, tensors, _ = split_inputs(model_input(pipeline, batch))
    finally:
        pipeline.model.artifact.runner.close()
    seconds = float(min_time) if min_time else 2.0
    runs = []
    for level in levels or [1]:
        runs.append(time_artifact(target, names, tensors, threads=int(level), seconds=seconds,
                                  torch_threads=threads, progress=progress).to_json())
    return {"schema": "parity.runner-bench/1", "target": str(target), "runner": "cpp", "format": runs[0]["format"],
            "batch_size": size, "seconds_per_level": seconds, "cpu_count": os.cpu_count(), "levels": runs}


def _cycle(items: Sequence[Any], size: int) -> list[Any]:
    if not items:
        raise ParityError("no inputs to time the artifact with", fix="pass --inputs FILE")
    return [items[i % len(items)] for i in range(size)]


def bench_cpp_report(doc: dict[str, Any]) -> Any:
    from parity.report.terminal.runner import runner_bench_report

    return runner_bench_report(doc)
