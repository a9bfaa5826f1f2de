"""parity: prove that a PyTorch model is still the same model on another machine.

The functions here are light fronts: ``import parity`` imports neither torch nor numpy,
so ``parity snapshot`` stays fast; each call imports its implementation on first use.
Each returns a result object (``to_json()`` for machines) and never prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Union

from parity._version import __version__
from parity.errors import ParityError
from parity.target.pipeline import Pipeline

if TYPE_CHECKING:  # the types below cost nothing at run time: `import parity` stays light
    import os
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path

    import torch
    from prometheus_client import CollectorRegistry

    from parity.benchmark.protocol import BenchResult
    from parity.bisection.oracle import Oracle
    from parity.bisection.search import BisectResult
    from parity.bisection.trials import IndexOptions
    from parity.comparison.verification import VerifyResult
    from parity.env.differences import EnvDiff
    from parity.env.doctor import DoctorReport
    from parity.env.lock import LockResult
    from parity.exporters.api import ExportResult
    from parity.records.recorder import RecordResult
    from parity.target.loader import LoadedTarget
    from parity.watch.events import Alarm
    from parity.watch.watcher import Watch

    #: A file or folder path.
    StrPath = Union[str, os.PathLike[str]]
    #: A snapshot: its dict, a snapshot file, a record or venv folder, or "current".
    SnapshotSpec = Union[Mapping[str, Any], str, os.PathLike[str]]
    #: What runs: a TARGET spec (file.py:build, package.module:build, an artifact or model
    #: folder), a loaded target, or a Pipeline.
    Target = Union[str, Path, Pipeline, LoadedTarget]
    #: An inputs file (.txt, .jsonl, .safetensors, .npz), the raw inputs themselves, or
    #: None for the pipeline's example inputs.
    Inputs = Union[str, Path, list[Any], None]
    #: Per-layer tolerances: {layer key pattern: {"atol": x, "rtol": y}}.
    Overrides = Mapping[str, Mapping[str, float]]

__all__ = [
    "ParityError",
    "Pipeline",
    "__version__",
    "bench",
    "bisect",
    "compare",
    "diff",
    "doctor",
    "export",
    "lock",
    "record",
    "snapshot",
    "verify",
    "watch",
]


def snapshot(python: StrPath | None = None, runtime: bool = False) -> dict[str, Any]:
    """Snapshot (``parity.snapshot/1``) of this interpreter, or of the interpreter (or venv
    folder) at ``python``, run as a subprocess; ``runtime`` adds BLAS, threads and precision.

    See :func:`parity.env.snapshots.snapshot`.
    """
    from parity.env.snapshots import snapshot as impl

    return impl(python, runtime)


def diff(a: SnapshotSpec, b: SnapshotSpec, requirements: StrPath | None = None) -> EnvDiff:
    """Differences from environment ``a`` to ``b``, ranked by risk.

    See :func:`parity.env.differences.diff`.
    """
    from parity.env.differences import diff as impl

    return impl(a, b, requirements)


def doctor(path: StrPath, snapshot: SnapshotSpec | None = None, check_index: bool = False) -> DoctorReport:
    """Lint a requirements file, against a snapshot when one is given.

    See :func:`parity.env.doctor.doctor`.
    """
    from parity.env.doctor import doctor as impl

    return impl(path, snapshot, check_index)


def lock(snapshot: SnapshotSpec, hashes: bool = False, *, out: StrPath | None = None) -> LockResult:
    """Build the lock for a snapshot (and write it to ``out`` when given).

    See :func:`parity.env.lock.lock`.
    """
    from parity.env.lock import lock as impl

    return impl(snapshot, hashes, out=out)


def record(
    target: Target | torch.nn.Module,
    inputs: Inputs = None,
    out: str | Path | None = None,
    capture: str = "stats",
    batch_size: int | None = None,
    calibrate: bool = False,
    bench: bool = False,
    seed: int = 0,
    *,
    snapshot_env: bool = True,
    overwrite: bool = False,
    shard_bytes: int = 67108864,
    max_size: int | str | None = None,
    layers: list[str] | tuple[str, ...] | None = None,
) -> RecordResult:
    """Record ``target`` on ``inputs`` into the directory ``out`` (written atomically).
    ``capture``: "outputs", "stats" or "full"; ``max_size``: bytes, or "500M", "2G";
    ``layers``: with "full", glob patterns of the module paths stored in full (stats
    elsewhere).

    See :func:`parity.records.recorder.record`.
    """
    from parity.records.recorder import record as impl

    return impl(
        target,
        inputs,
        out,
        capture,
        batch_size,
        calibrate,
        bench,
        seed,
        snapshot_env=snapshot_env,
        overwrite=overwrite,
        shard_bytes=shard_bytes,
        max_size=max_size,
        layers=layers,
    )


def verify(
    record_dir: StrPath,
    target: str | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    max_slowdown: float | None = None,
    overrides: Overrides | None = None,
) -> VerifyResult:
    """Re-run ``target`` (default: the one A recorded) here and check it against A's record.
    ``max_slowdown`` is a fraction (0.1: 10% slower fails).

    See :func:`parity.comparison.verification.verify`.
    """
    from parity.comparison.verification import verify as impl

    return impl(
        record_dir, target, atol=atol, rtol=rtol, max_slowdown=max_slowdown, overrides=overrides
    )


def compare(
    dir_a: StrPath,
    dir_b: StrPath,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    overrides: Overrides | None = None,
) -> VerifyResult:
    """Compare record B against reference record A. Raises RecordError for a bad record.

    See :func:`parity.comparison.verification.compare`.
    """
    from parity.comparison.verification import compare as impl

    return impl(dir_a, dir_b, atol=atol, rtol=rtol, overrides=overrides)


def bench(
    target: Target,
    inputs: Inputs = None,
    *,
    batch_size: int | None = None,
    threads: int | None = None,
    min_time: float = 2.0,
    min_iters: int = 20,
    max_warmup: int = 50,
) -> BenchResult:
    """Benchmark ``target`` stage by stage and return the raw samples with their environment.

    See :func:`parity.benchmark.protocol.bench`.
    """
    from parity.benchmark.protocol import bench as impl

    return impl(
        target,
        inputs,
        batch_size=batch_size,
        threads=threads,
        min_time=min_time,
        min_iters=min_iters,
        max_warmup=max_warmup,
    )


def export(
    target: Target,
    format: str,
    out: StrPath,
    *,
    method: str = "trace",
    static: bool = False,
    inputs: Inputs = None,
    check: bool = True,
    bench: bool = False,
    atol: float | None = None,
    rtol: float | None = None,
) -> ExportResult:
    """Export ``target`` to ``out`` in ``format`` ("torchscript", "export", "aoti", "onnx")
    and check it against eager.

    See :func:`parity.exporters.api.export`.
    """
    from parity.exporters.api import export as impl

    return impl(
        target,
        format,
        out,
        method=method,
        static=static,
        inputs=inputs,
        check=check,
        bench=bench,
        atol=atol,
        rtol=rtol,
    )


def bisect(
    good: StrPath,
    bad: StrPath,
    oracle: Oracle | str | None = None,
    command: Sequence[str] = (),
    *,
    runs: int = 1,
    narrow: bool = False,
    index: IndexOptions | None = None,
    cache_dir: StrPath | None = None,
    allow_python_mismatch: bool = False,
    installer: str | None = None,
    timeout: float | None = None,
    cache_max_size: str | None = None,
    target: str | None = None,
    parallel: int | None = None,
    ray: str | None = None,
) -> BisectResult:
    """Find the package change(s) between ``good`` and ``bad`` that break the oracle.

    See :func:`parity.bisection.search.bisect`.
    """
    from parity.bisection.search import bisect as impl

    return impl(
        good,
        bad,
        oracle,
        command,
        runs=runs,
        narrow=narrow,
        index=index,
        cache_dir=cache_dir,
        allow_python_mismatch=allow_python_mismatch,
        installer=installer,
        timeout=timeout,
        cache_max_size=cache_max_size,
        target=target,
        parallel=parallel,
        ray=ray,
    )


def watch(
    pipeline_or_model: Pipeline | torch.nn.Module,
    golden: StrPath,
    sample_every: int = 100,
    canary_every: float | None = 600.0,
    *,
    name: str | None = None,
    state_dir: StrPath | None = None,
    registry: CollectorRegistry | None = None,
    metrics: bool = True,
    on_alarm: Callable[[Alarm], Any] | None = None,
    canary_on_start: bool = True,
    window: int = 20,
    drift_threshold: float = 1.0,
    drift_alarm: float | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    overrides: Overrides | None = None,
) -> Watch:
    """Keep the golden record guarding ``pipeline_or_model`` while it serves: ``w(batch)``
    serves, ``w.check()`` runs the golden canary, ``w.status()``, ``w.close()``.

    See :func:`parity.watch.watcher.watch`.
    """
    from parity.watch.watcher import watch as impl

    return impl(
        pipeline_or_model,
        golden,
        sample_every,
        canary_every,
        name=name,
        state_dir=state_dir,
        registry=registry,
        metrics=metrics,
        on_alarm=on_alarm,
        canary_on_start=canary_on_start,
        window=window,
        drift_threshold=drift_threshold,
        drift_alarm=drift_alarm,
        atol=atol,
        rtol=rtol,
        overrides=overrides,
    )
