"""parity.benchmark: stage-by-stage benchmarks stamped with their environment, and their comparison.

``bench()`` measures (raw samples kept, ``parity.bench/1``), ``compare_bench()`` compares
two results with bootstrap CIs and ranks the environment differences behind a slower
stage. ``bench_for_record`` and ``verify_performance`` are the entry points used by
``parity record --bench`` and ``parity verify --max-slowdown``.
"""

from parity.benchmark.compare import (
    BenchComparison,
    StageComparison,
    bench_from_file,
    compare_bench,
    verify_performance,
)
from parity.benchmark.protocol import BenchConfig, BenchResult, bench, bench_for_record

__all__ = [
    "BenchComparison",
    "BenchConfig",
    "BenchResult",
    "StageComparison",
    "bench",
    "bench_for_record",
    "bench_from_file",
    "compare_bench",
    "verify_performance",
]
