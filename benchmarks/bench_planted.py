"""Planted regressions with real timing: are they found, in the right stage, with the
right top suspect? (The unit tests check the same logic on a virtual clock; wall-clock
checks live here, not in the test suite.)

    .venv/bin/python benchmarks/bench_planted.py --trials 5

1. a postprocess that sleeps 5 ms more than the baseline's -> postprocess slower and the
   stage that lost the most time;
2. a model of real matmuls run with 1 thread against a baseline with 2 -> model stage
   changed significantly and the thread difference is the top attribution. On a busy
   2-core machine 2 OpenMP threads can be *slower* than 1, so the slower of the two runs
   is compared against the faster one, as a user would.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from parity.benchmark import bench, compare_bench
from parity.target import Pipeline


class Matmuls(torch.nn.Module):
    """A few large matmuls: enough work per call that a second thread matters."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList(torch.nn.Linear(512, 512, bias=False) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def _sleepy(seconds: float):
    def post(out):
        time.sleep(seconds)
        return out

    return post


def postprocess_trial(min_time: float) -> bool:
    pipe = Pipeline(model=torch.nn.Linear(16, 4).eval(), example_inputs=[torch.randn(16) for _ in range(4)],
                    postprocess=_sleepy(0.001), batch_size=4, name="sleepy")
    base = bench(pipe, min_time=min_time, min_iters=15)
    pipe.postprocess = _sleepy(0.006)
    cmp = compare_bench(bench(pipe, min_time=min_time, min_iters=15), base)
    # After a sleep the next tiny model call runs on cold caches and can be a few us
    # slower too; the stage that lost the most time is the one that was planted.
    stages = [s for s in cmp.stages if s.stage != "end_to_end"]
    most = max(stages, key=lambda s: s.current_p50 - s.baseline_p50)
    return cmp.regression and "postprocess" in cmp.slower_stages and most.stage == "postprocess"


def threads_trial(min_time: float) -> tuple[bool, float]:
    pipe = Pipeline(model=Matmuls().eval(), example_inputs=[torch.randn(512) for _ in range(4)],
                    batch_size=256, name="matmuls")
    opts = {"min_time": min_time, "min_iters": 15, "max_warmup": 10}
    two, one = bench(pipe, threads=2, **opts), bench(pipe, threads=1, **opts)
    p50_one, p50_two = (statistics.median(r.measurement.samples["model"]) for r in (one, two))
    slow, fast = (one, two) if p50_one > p50_two else (two, one)
    cmp = compare_bench(slow, fast)
    top = (cmp.attribution or [{}])[0]
    ok = "model" in cmp.slower_stages and "thread" in str(top.get("name")) and "model" in top.get("touches_slower_stage", [])
    return ok, p50_one / p50_two


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    post = [postprocess_trial(args.min_time) for _ in range(args.trials)]
    threads = [threads_trial(args.min_time) for _ in range(args.trials)]
    print(f"postprocess +5 ms found in postprocess: {sum(post)}/{args.trials}")
    print(f"1 vs 2 threads: model slower, threads top suspect: {sum(ok for ok, _ in threads)}/{args.trials}; "
          f"p50(1 thread)/p50(2 threads) per trial: {', '.join(f'{r:.2f}' for _, r in threads)}")


if __name__ == "__main__":
    main()
