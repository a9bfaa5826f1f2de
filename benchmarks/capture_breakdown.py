"""Where stats capture spends its time inside a forward: the hooks' own time against the
plain forward, which is steadier on a shared machine than the wall-clock ratio.

For each model, interleaved repetitions of: a plain forward, a forward with a no-op hook
on every submodule (the cost of having hooks at all), and a stats-capture forward whose
hook time is summed with perf_counter around every hook call. Prints medians:

    .venv/bin/python benchmarks/capture_breakdown.py [--reps 11] [--threads N]

capture_overhead.py is the benchmark that holds the targets; this one says where the
overhead is (hooks vs. the rest) when that one's figures move.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
import capture_overhead as co
from parity.records.capture import LayerCapture
from parity.records.writer import ShardWriter


def measure(model: torch.nn.Module, x: Any, reps: int) -> dict[str, float]:
    spent = [0.0]
    original = LayerCapture._on_output

    def timed(self: LayerCapture, *args: Any) -> None:
        start = time.perf_counter()
        original(self, *args)
        spent[0] += time.perf_counter() - start

    root = Path(tempfile.mkdtemp())
    samples: dict[str, list[float]] = {"plain": [], "noop_hooks": [], "capture": [], "in_hooks": []}
    LayerCapture._on_output = timed  # type: ignore[method-assign]
    try:
        for rep in range(reps + 1):
            start = time.perf_counter()
            with torch.no_grad():
                co._call(model, x)
            plain = time.perf_counter() - start
            handles = [m.register_forward_hook(lambda *a: None) for m in model.modules()]
            start = time.perf_counter()
            with torch.no_grad():
                co._call(model, x)
            noop = time.perf_counter() - start
            for h in handles:
                h.remove()
            spent[0] = 0.0
            writer = ShardWriter(root / f"r{rep}", "a", direct=False)  # as record() does for stats
            start = time.perf_counter()
            with torch.no_grad(), LayerCapture(model, "stats", writer) as hooks:
                hooks.begin_batch(0)
                co._call(model, x)
            writer.close()
            captured = time.perf_counter() - start
            if rep:  # the first round warms up
                for key, value in (("plain", plain), ("noop_hooks", noop), ("capture", captured),
                                   ("in_hooks", spent[0])):
                    samples[key].append(value)
    finally:
        LayerCapture._on_output = original  # type: ignore[method-assign]
    return {k: statistics.median(v) for k, v in samples.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, pre, _ = co.minilm()
    torch.manual_seed(0)
    cases = [("minilm-b32", model, pre(co.texts(32))), ("convnet-b32-64px", co.ConvNet().eval(), torch.randn(32, 3, 64, 64))]
    print(f"torch threads {torch.get_num_threads()}, reps {args.reps}")
    for name, m, x in cases:
        r = measure(m, x, args.reps)
        print(f"{name}: plain {r['plain'] * 1e3:.0f} ms, no-op hooks {r['noop_hooks'] / r['plain']:.2f}x, "
              f"stats capture {r['capture'] / r['plain']:.2f}x, of which in hooks {r['in_hooks'] * 1e3:.0f} ms "
              f"({r['in_hooks'] / r['plain']:.0%} of plain)")


if __name__ == "__main__":
    main()
