"""A/A check: two runs of the same configuration must say "no significant change".

Each trial benchmarks the same pipeline twice, back to back, with the same config,
and compares the second run against the first with ``compare_bench`` (default
``max_slowdown`` 10%). A trial passes when it claims no change: "no significant
change", or "inconclusive" (the machine's drift could explain what was seen). Target:
at least 9 of 10 trials.

Workloads: all-MiniLM-L6-v2 on a batch of 8 sentences (tokenizer preprocess, model,
masked mean-pooling postprocess) and a small conv net on 8 images of 3x96x96.

``--load N`` starts N CPU-burning processes for the second run of every trial (A/A
under load, issue 13): the machine then explains any slowdown, and the comparison must
say "inconclusive" or "no significant change", never "slower" or "regression". A
trial under load passes unless it claims a slowdown.

Usage: ``.venv/bin/python benchmarks/bench_aa.py [--trials 10] [--min-time 1.0] [--threads 1]
[--workload minilm|convnet|both] [--load N] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_agreement import convnet_pipeline, minilm_pipeline


def masked_mean(out: Any, inputs: Any) -> Any:
    """Mean of the token embeddings over real tokens (padding excluded)."""
    mask = inputs["attention_mask"].unsqueeze(-1).to(out.last_hidden_state.dtype)
    return (out.last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def with_mean_pooling(pipeline: Any) -> Any:
    """MiniLM as served: a postprocess that mean-pools the last hidden state."""
    pipeline.postprocess = masked_mean
    return pipeline


def burners(count: int, seconds: float = 300.0) -> list[subprocess.Popen[bytes]]:
    """CPU-burning processes that stop by themselves after ``seconds``."""
    code = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def one_trial(pipeline: Any, min_time: float, load: int = 0) -> dict[str, Any]:
    from parity.benchmark import bench, compare_bench

    options = {"batch_size": 8, "min_time": min_time, "min_iters": 10}
    first = bench(pipeline, **options)
    procs = burners(load)
    try:
        if procs:
            time.sleep(0.3)
        second = bench(pipeline, **options)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    cmp = compare_bench(second, first).to_json()
    return {"verdict": cmp["verdict"], "machine": cmp.get("machine"),
            "stages": {s["stage"]: {"ratio": round(s["ratio"], 4), "ci": [round(c, 4) for c in s["ci"]],
                                    "margin": round(s["margin"], 4), "verdict": s["verdict"]}
                       for s in cmp["stages"]}}


def run_workload(name: str, pipeline: Any, trials: int, min_time: float, load: int = 0) -> dict[str, Any]:
    results = []
    for t in range(trials):
        trial = one_trial(pipeline, min_time, load)
        results.append(trial)
        ratios = ", ".join(f"{k} {v['ratio']:.3f}" for k, v in trial["stages"].items())
        print(f"  {name} trial {t + 1}: {trial['verdict']} ({ratios})", file=sys.stderr)
    counts = {v: sum(r["verdict"] == v for r in results)
              for v in ("no significant change", "inconclusive", "faster", "slower", "regression")}
    passed = counts["no significant change"]
    # "inconclusive" claims nothing: what counts is that the same code is not called changed.
    claims = counts["faster"] + counts["slower"] + counts["regression"]
    ok = (trials - claims >= round(0.9 * trials)) if not load else counts["slower"] + counts["regression"] == 0
    return {"workload": name, "trials": trials, "load": load, "no_significant_change": passed, "counts": counts,
            "ok": ok, "results": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workload", choices=("minilm", "convnet", "both"), default="both")
    parser.add_argument("--load", type=int, default=0, help="CPU burners during each trial's second run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    builders = {"minilm-batch8": lambda: with_mean_pooling(minilm_pipeline()), "convnet-8x3x96x96": convnet_pipeline}
    load_start = os.getloadavg()
    chosen = [k for k in builders if args.workload == "both" or k.startswith(args.workload)]
    summaries = [run_workload(name, builders[name](), args.trials, args.min_time, args.load) for name in chosen]
    doc = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                       "threads": args.threads, "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                       "burners": args.load},
           "summaries": summaries}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for s in summaries:
            counts = ", ".join(f"{v} {n}" for v, n in s["counts"].items() if n)
            goal = "no slowdown claimed under load" if args.load else "9/10 claim no change"
            print(f"{s['workload']}: {counts} of {s['trials']} trials ({goal}: {'OK' if s['ok'] else 'NOT MET'})")
    return 0 if all(s["ok"] for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
