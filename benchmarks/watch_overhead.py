"""What `parity.watch` costs a server: throughput with the watch against without, and the
cost of one sampled call against stats capture of the same call.

Measures, in one run with interleaved repetitions (ABBA order) and medians, on the demo
text classifier (parity.demo, one request = one review, batch 1: the smallest forward, so
the watch's per-call cost weighs most):

1. serving throughput through ``w(batch)`` with ``sample_every`` (100), canaries off
   (they run every 10 minutes in a daemon thread, not on the request path), against the
   same pipeline called directly. Target: watched / plain >= 0.98.
2. the extra time of one sampled call (hooks put on and off, a per-layer summary with the
   record's one-pass kernel, the drift windows) against the extra time of stats capture
   of one forward as ``parity record`` runs it (hooks, stats, a 64-element sample and
   the background shard writer, in capture sessions of 4 forwards, set-up included).
   Target: sampled extra <= capture extra.

    .venv/bin/python benchmarks/watch_overhead.py [--reps 9] [--calls 2000] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def setup(root: Path) -> tuple[Any, Any, list[list[str]]]:
    import parity
    from parity.demo.scenarios import EXAMPLE_INPUTS, build_reference, save_tokenizers

    save_tokenizers(root)
    pipeline = build_reference(root / "tokenizer")
    parity.record(pipeline, out=root / "golden", capture="full", snapshot_env=False)
    return pipeline, root / "golden", [[t] for t in EXAMPLE_INPUTS]


def plain_call(pipeline: Any) -> Any:
    from parity.target import model_input

    def call(batch: list[str]) -> Any:
        x = model_input(pipeline, batch)
        return pipeline.run_postprocess(pipeline.call_model(x), x)

    return call


def timed(fn: Any, batches: list[list[str]], calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(batches[i % len(batches)])
    return time.perf_counter() - start


def throughput(pipeline: Any, golden: Path, batches: list[list[str]], reps: int, calls: int,
               every: int, root: Path) -> dict[str, Any]:
    import parity

    w = parity.watch(pipeline, golden, sample_every=every, canary_every=None, canary_on_start=False,
                     metrics=False, state_dir=root / "state-throughput")
    plain = plain_call(pipeline)
    timed(plain, batches, calls // 4)
    timed(w, batches, calls // 4)
    ratios, plain_s, watched_s = [], [], []
    for rep in range(reps):
        order = (plain, w) if rep % 2 == 0 else (w, plain)  # ABBA: drift of the machine cancels
        took = {id(fn): timed(fn, batches, calls) for fn in order}
        plain_s.append(took[id(plain)] / calls)
        watched_s.append(took[id(w)] / calls)
        ratios.append(took[id(plain)] / took[id(w)])  # watched throughput / plain throughput
    status = w.status()
    w.close()
    return {"sample_every": every, "calls_per_rep": calls, "reps": reps, "ratio_median": statistics.median(ratios),
            "ratios": ratios, "plain_call_s_median": statistics.median(plain_s),
            "watched_call_s_median": statistics.median(watched_s), "sampled_calls": status.sampled,
            "sampled_overhead_mean_s": status.overhead["seconds_mean"]}


def capture_extra(pipeline: Any, batches: list[list[str]], n: int, root: Path) -> list[float]:
    """Seconds per forward of stats capture as record() runs it, sessions of 4 forwards."""
    import torch

    from parity.records.capture import LayerCapture
    from parity.records.writer import ShardWriter

    call, out = plain_call(pipeline), []
    for session in range(n):
        folder = root / f"capture-{session}"
        folder.mkdir()
        start = time.perf_counter()
        writer = ShardWriter(folder, "activations", direct=False)
        with torch.no_grad(), LayerCapture(pipeline.model, "stats", writer, 0) as hooks:
            for i in range(4):
                hooks.begin_batch(i)
                call(batches[(session * 4 + i) % len(batches)])
        writer.close()
        out.append((time.perf_counter() - start) / 4)
    return out


def sampled_cost(pipeline: Any, golden: Path, batches: list[list[str]], reps: int, root: Path) -> dict[str, Any]:
    import torch

    import parity

    w = parity.watch(pipeline, golden, sample_every=1, canary_every=None, canary_on_start=False,
                     metrics=False, state_dir=root / "state-sampled")
    plain = plain_call(pipeline)
    n = 40
    with torch.no_grad():
        for fn in (plain, w):
            timed(fn, batches, 20)
        capture_extra(pipeline, batches, 2, root / "warm") if (root / "warm").mkdir() is None else None
        plain_s, sampled_s, capture_s = [], [], []
        for rep in range(reps):
            plain_s.append(timed(plain, batches, n) / n)
            sampled_s.append(timed(w, batches, n) / n)
            cap = root / f"rep-{rep}"
            cap.mkdir()
            capture_s.append(statistics.median(capture_extra(pipeline, batches, n // 4, cap)))
    w.close()
    plain_m = statistics.median(plain_s)
    sampled, capture = statistics.median(sampled_s) - plain_m, statistics.median(capture_s) - plain_m
    return {"plain_call_s": plain_m, "sampled_call_s": statistics.median(sampled_s),
            "stats_capture_call_s": statistics.median(capture_s), "sampled_extra_s": sampled,
            "stats_capture_extra_s": capture, "sampled_over_capture": sampled / capture if capture > 0 else None}


def machine() -> dict[str, Any]:
    import torch

    from parity.records import native

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
            "load_avg": os.getloadavg(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": sys.version.split()[0], "native_kernel": native.kernel() is not None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=9)
    ap.add_argument("--calls", type=int, default=2000, help="calls per timed block (a multiple of --sample-every)")
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: one request per core, as a multi-worker server runs; on a shared "
                         "machine more threads measure OpenMP waiting on busy cores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="parity-watch-bench-") as tmp, torch.no_grad():
        root = Path(tmp)
        pipeline, golden, batches = setup(root)
        result = {"machine": machine(), "command": " ".join(sys.argv),
                  "throughput": throughput(pipeline, golden, batches, args.reps, args.calls, args.sample_every, root),
                  "sampled_call": sampled_cost(pipeline, golden, batches, args.reps, root)}
    t, s = result["throughput"], result["sampled_call"]
    result["targets"] = {"throughput_ratio_ge_0.98": t["ratio_median"] >= 0.98,
                         "sampled_le_capture": s["sampled_extra_s"] <= s["stats_capture_extra_s"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"throughput watched/plain (sample_every={t['sample_every']}): median {t['ratio_median']:.4f} "
          f"over {t['reps']} reps of {t['calls_per_rep']} calls; range {min(t['ratios']):.4f}-{max(t['ratios']):.4f}")
    print(f"  plain {t['plain_call_s_median'] * 1e6:.0f} us/call, watched {t['watched_call_s_median'] * 1e6:.0f} us/call")
    print(f"sampled call extra {s['sampled_extra_s'] * 1e6:.0f} us vs stats capture extra "
          f"{s['stats_capture_extra_s'] * 1e6:.0f} us per forward (plain {s['plain_call_s'] * 1e6:.0f} us)")
    print(f"targets: {result['targets']}  machine: {result['machine']}")


if __name__ == "__main__":
    main()
