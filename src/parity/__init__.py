"""parity: prove that a PyTorch model is still the same model on another machine.

The functions here are light fronts: ``import parity`` imports neither torch nor numpy,
so ``parity snapshot`` stays fast; each call imports its implementation on first use.
Each returns a result object (``to_json()`` for machines) and never prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parity._version import __version__
from parity.errors import ParityError
from parity.target.pipeline import Pipeline

if TYPE_CHECKING:
    from parity.benchmark.protocol import BenchResult
    from parity.bisection.search import BisectResult
    from parity.comparison.verify import VerifyResult
    from parity.env.diff import EnvDiff
    from parity.env.doctor import DoctorReport
    from parity.env.lock import LockResult
    from parity.exporters.api import ExportResult
    from parity.records.recorder import RecordResult

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
]


def snapshot(python: Any = None, runtime: Any = False) -> dict[str, Any]:
    """Snapshot of this interpreter, or of the interpreter at ``python`` (run as a subprocess).

    See :func:`parity.env.snapshot.snapshot`.
    """
    from parity.env.snapshot import snapshot as impl

    return impl(python, runtime)


def diff(a: Any, b: Any, requirements: Any = None) -> EnvDiff:
    """Differences from environment ``a`` to ``b``.

    See :func:`parity.env.diff.diff`.
    """
    from parity.env.diff import diff as impl

    return impl(a, b, requirements)


def doctor(path: Any, snapshot: Any = None, check_index: Any = False) -> DoctorReport:
    """Lint a requirements file, against a snapshot when one is given.

    See :func:`parity.env.doctor.doctor`.
    """
    from parity.env.doctor import doctor as impl

    return impl(path, snapshot, check_index)


def lock(snapshot: Any, hashes: Any = False, *, out: Any = None) -> LockResult:
    """Build the lock for a snapshot (dict, or a spec :func:`parity.env.load_snapshot` reads).

    See :func:`parity.env.lock.lock`.
    """
    from parity.env.lock import lock as impl

    return impl(snapshot, hashes, out=out)


def record(
    target: Any,
    inputs: Any = None,
    out: Any = None,
    capture: Any = "stats",
    batch_size: Any = None,
    calibrate: Any = False,
    bench: Any = False,
    seed: Any = 0,
    *,
    snapshot_env: Any = True,
    overwrite: Any = False,
    shard_bytes: Any = 67108864,
) -> RecordResult:
    """Record ``target`` on ``inputs`` into the directory ``out`` (written atomically).

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
    )


def verify(
    record_dir: Any,
    target: Any = None,
    *,
    atol: Any = None,
    rtol: Any = None,
    max_slowdown: Any = None,
    overrides: Any = None,
) -> VerifyResult:
    """Re-run ``target`` (default: the one A recorded) here and check it against A's record.

    See :func:`parity.comparison.verify.verify`.
    """
    from parity.comparison.verify import verify as impl

    return impl(
        record_dir, target, atol=atol, rtol=rtol, max_slowdown=max_slowdown, overrides=overrides
    )


def compare(
    dir_a: Any, dir_b: Any, *, atol: Any = None, rtol: Any = None, overrides: Any = None
) -> VerifyResult:
    """Compare record B against reference record A. Raises RecordError for a bad record.

    See :func:`parity.comparison.verify.compare`.
    """
    from parity.comparison.verify import compare as impl

    return impl(dir_a, dir_b, atol=atol, rtol=rtol, overrides=overrides)


def bench(
    target: Any,
    inputs: Any = None,
    *,
    batch_size: Any = None,
    threads: Any = None,
    min_time: Any = 2.0,
    min_iters: Any = 20,
    max_warmup: Any = 50,
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
    target: Any,
    format: Any,
    out: Any,
    *,
    method: Any = "trace",
    static: Any = False,
    inputs: Any = None,
    check: Any = True,
    bench: Any = False,
    atol: Any = None,
    rtol: Any = None,
) -> ExportResult:
    """Export ``target`` to ``out`` in ``format`` and check it against eager.

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
    good: Any,
    bad: Any,
    oracle: Any = None,
    command: Any = (),
    *,
    runs: Any = 1,
    narrow: Any = False,
    index: Any = None,
    cache_dir: Any = None,
    allow_python_mismatch: Any = False,
    installer: Any = None,
    timeout: Any = None,
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
    )
