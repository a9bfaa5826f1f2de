"""Comparison throughput: all metrics of ``compare_tensors`` vs ``numpy.allclose``.

``numpy.allclose`` computes one boolean; ``compare_tensors`` computes max/mean abs error,
relative L2, cosine, the Polygraphy mismatch count and NaN/Inf disagreement. Target:
at least 2x the throughput of ``numpy.allclose`` on the same pair of float32 tensors.

Repetitions are interleaved (allclose, ours, allclose, ours...) so that load from other
processes on a shared machine hits both alike; the figure is the ratio of medians.
Three pairs are measured: B = A plus noise under tolerance (the usual case), B with
0.1% of elements out of tolerance, and B with NaNs in both tensors at the same places.

Usage: ``.venv/bin/python benchmarks/compare_speed.py [--elements 16777216] [--reps 15] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any


def pairs(n: int) -> dict[str, tuple[Any, Any]]:
    import torch

    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, generator=g)
    close = a + torch.randn(n, generator=g) * 1e-6
    some = close.clone()
    some[:: 1000] += 1.0
    nan_a, nan_b = a.clone(), close.clone()
    nan_a[:: 4096] = float("nan")
    nan_b[:: 4096] = float("nan")
    return {"within tolerance": (a, close), "0.1% out of tolerance": (a, some), "NaNs at the same places": (nan_a, nan_b)}


def measure(a: Any, b: Any, reps: int) -> dict[str, Any]:
    import numpy as np

    from parity.comparison.metrics import compare_tensors

    an, bn = a.numpy(), b.numpy()
    ours, theirs = [], []
    compare_tensors(a, b, 1e-5, 1e-4)  # warm-up: first-call allocations
    np.allclose(an, bn, rtol=1e-4, atol=1e-5, equal_nan=True)
    for _ in range(reps):
        t0 = time.perf_counter()
        np.allclose(an, bn, rtol=1e-4, atol=1e-5, equal_nan=True)
        t1 = time.perf_counter()
        compare_tensors(a, b, 1e-5, 1e-4)
        t2 = time.perf_counter()
        theirs.append(t1 - t0)
        ours.append(t2 - t1)
    m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
    bytes_read = 2 * a.numel() * a.element_size()
    return {"allclose_ms": m_theirs * 1e3, "compare_tensors_ms": m_ours * 1e3, "speedup": m_theirs / m_ours,
            "compare_GBps": bytes_read / m_ours / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=1 << 24)
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import numpy as np
    import torch

    results = {name: measure(a, b, args.reps) for name, (a, b) in pairs(args.elements).items()}
    doc = {"elements": args.elements, "dtype": "float32", "reps": args.reps, "cpu_count": os.cpu_count(),
           "machine": platform.machine(), "torch": torch.__version__, "numpy": np.__version__, "results": results}
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(f"{args.elements} float32 elements, {args.reps} interleaved reps, medians")
    for name, r in results.items():
        print(f"  {name:26s} allclose {r['allclose_ms']:7.1f} ms   compare_tensors {r['compare_tensors_ms']:7.1f} ms"
              f"   speedup {r['speedup']:.2f}x   ({r['compare_GBps']:.1f} GB/s)")


if __name__ == "__main__":
    main()
