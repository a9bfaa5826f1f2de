"""``--bench``: eager and the exported artifact measured with the same bench protocol.

Both sides use the same batch size; the speed ratio compares the *model* stage (the
artifact has no Python preprocess/postprocess of its own), with a bootstrap confidence
interval from the raw samples. Each side runs in its own fresh interpreter when the
target is a spec, so load time and peak memory belong to that side alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import BenchError

#: short runs: --bench is a side-by-side glance, benchmarks/ has the long runs
MIN_TIME = 1.0
MIN_ITERS = 15

_CHILD = """
import json, sys
from parity.benchmark import bench
spec, inputs, batch = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
r = bench(spec, inputs, batch_size=batch, min_time={min_time}, min_iters={min_iters})
doc = r.to_json()
# VmHWM is this process's own peak; ru_maxrss is carried over from the parent across exec
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")] if sys.platform == "linux" else []
if hwm:
    doc["peak_rss_bytes"] = int(hwm[0].split()[1]) * 1024
sys.stdout.write(json.dumps(doc))
"""


@dataclass
class Side:
    """One side's figures (seconds unless named otherwise)."""

    label: str
    p50: float
    p99: float
    items_per_s: float | None
    load_seconds: float | None
    peak_rss_bytes: int | None
    file_bytes: int | None
    samples: list[float]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "p50": self.p50, "p99": self.p99, "items_per_s": self.items_per_s,
                "load_seconds": self.load_seconds, "peak_rss_bytes": self.peak_rss_bytes,
                "file_bytes": self.file_bytes, "warnings": self.warnings}


@dataclass
class SideBySide:
    """Eager vs artifact; ``ratio`` is artifact model-stage p50 / eager's (above 1: slower)."""

    batch_size: int
    eager: Side
    artifact: Side
    ratio: float
    ratio_ci: tuple[float, float]

    @property
    def verdict(self) -> str:
        low, high = self.ratio_ci
        if low > 1.0:
            return f"the artifact is SLOWER than eager: {self.ratio:.2f}x the time per batch"
        if high < 1.0:
            return f"the artifact is faster than eager: {1 / self.ratio:.2f}x the speed"
        return f"no clear speed difference (ratio {self.ratio:.2f}, CI {low:.2f}-{high:.2f})"

    def to_json(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "eager": self.eager.to_json(), "artifact": self.artifact.to_json(),
                "ratio": self.ratio, "ratio_ci": list(self.ratio_ci), "verdict": self.verdict,
                "basis": "median model-stage seconds per batch, artifact / eager; 95% bootstrap CI"}


def side_by_side(target: Any, pipeline: Any, artifact: Path, inputs: Any, job: Any) -> SideBySide:
    """Bench eager and ``artifact`` at the example batch size and compare them."""
    batch = int(job.tensors[0].shape[0]) if job.tensors and job.tensors[0].dim() else 1
    batch = min(batch, max(1, int(pipeline.batch_size or batch)))
    input_file = str(inputs) if isinstance(inputs, (str, os.PathLike)) else ""
    if isinstance(target, (str, os.PathLike)):
        eager = bench_in_child(str(target), input_file, batch)
    else:
        eager = _bench_here(pipeline, inputs, batch)
    art = bench_in_child(str(artifact), "", batch)
    return compare_sides(eager, art, batch, artifact.stat().st_size)


def bench_in_child(spec: str, inputs: str, batch: int) -> dict[str, Any]:
    """``parity.bench/1`` JSON of ``spec`` measured in a fresh interpreter."""
    code = _CHILD.format(min_time=MIN_TIME, min_iters=MIN_ITERS)
    proc = subprocess.run([sys.executable, "-c", code, spec, inputs, str(batch)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"benchmarking {spec} failed: {tail}", fix="run `parity bench " + spec + "` to see why")
    return dict(json.loads(proc.stdout))


def _bench_here(pipeline: Any, inputs: Any, batch: int) -> dict[str, Any]:
    from parity.benchmark import bench

    result = bench(pipeline, inputs, batch_size=batch, min_time=MIN_TIME, min_iters=MIN_ITERS)
    return dict(result.to_json())


def compare_sides(eager: dict[str, Any], art: dict[str, Any], batch: int, file_bytes: int) -> SideBySide:
    """Build the side-by-side from two ``parity.bench/1`` documents."""
    from parity.benchmark.stats import bootstrap_median_ratio

    e, a = _side("eager", eager, None), _side("artifact", art, file_bytes)
    ratio, low, high = bootstrap_median_ratio(a.samples, e.samples)
    return SideBySide(batch, e, a, ratio, (low, high))


def _side(label: str, doc: dict[str, Any], file_bytes: int | None) -> Side:
    model = doc["stages"]["model"]
    return Side(label=label, p50=model["p50"], p99=model["p99"],
                items_per_s=doc["batch_size"] / model["p50"] if model["p50"] else None,
                load_seconds=doc.get("load_seconds"), peak_rss_bytes=doc.get("peak_rss_bytes"),
                file_bytes=file_bytes, samples=list(model["samples"]), warnings=list(doc.get("warnings", [])))


# --------------------------------------------------------------------------- under load (--concurrency)

_LOAD_CHILD = """
import json, sys
from parity.benchmark.load import bench_load
spec, inputs, batch, levels, duration, processes = sys.argv[1:7]
doc = bench_load(spec, inputs or None, levels=[int(n) for n in levels.split(",")], duration_s=float(duration),
                 processes=processes == "1", batch_size=int(batch), model_only=True).to_json()
doc["env"] = None  # the side-by-side needs the figures only
sys.stdout.write(json.dumps(doc))
"""


def load_in_child(spec: str, inputs: str, batch: int, levels: list[int], duration_s: float,
                  processes: bool) -> dict[str, Any]:
    """``parity.bench/1`` load document of ``spec`` measured in a fresh interpreter."""
    args = [spec, inputs, str(batch), ",".join(map(str, levels)), repr(float(duration_s)), "1" if processes else "0"]
    proc = subprocess.run([sys.executable, "-c", _LOAD_CHILD, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"benchmarking {spec} under load failed: {tail}",
                         fix=f"run `parity bench {spec} --concurrency {','.join(map(str, levels))}` to see why")
    return dict(json.loads(proc.stdout))


def side_by_side_load(target: str, artifact: str, inputs: str | None, levels: list[int], duration_s: float,
                      processes: bool = False, batch: int = 1) -> dict[str, Any]:
    """Eager ``target`` and ``artifact`` under the same closed-loop load, level by level (JSON).

    Each side runs in its own interpreter. Per level: requests/s of each side, the
    artifact/eager throughput ratio, each side's scaling (req/s at N / req/s at 1: with
    threads, what the GIL leaves of N clients), p50s and their bootstrap ratio CI.
    """
    eager = load_in_child(str(target), inputs or "", batch, levels, duration_s, processes)
    art = load_in_child(str(artifact), "", batch, levels, duration_s, processes)
    return compare_load_sides(eager, art)


def compare_load_sides(eager: dict[str, Any], art: dict[str, Any]) -> dict[str, Any]:
    """The per-level side-by-side of two load documents with the same levels."""
    from parity.benchmark.stats import bootstrap_median_ratio

    rows = []
    e_levels, a_levels = eager["load"]["levels"], art["load"]["levels"]
    for e, a in zip(e_levels, a_levels):
        ratio, low, high = bootstrap_median_ratio(a["latency"]["samples"], e["latency"]["samples"])
        rows.append({"concurrency": e["concurrency"], "eager": _load_side(e, e_levels[0]),
                     "artifact": _load_side(a, a_levels[0]),
                     "throughput_ratio": _div(a["throughput"]["requests_per_s"], e["throughput"]["requests_per_s"]),
                     "p50_ratio": ratio, "p50_ratio_ci": [low, high]})
    top = rows[-1]
    summary = (f"at {top['concurrency']} clients eager reaches {_x(top['eager']['scaling'])} its one-client "
               f"throughput, the artifact {_x(top['artifact']['scaling'])}")
    return {"mode": eager["load"]["mode"], "duration_s": eager["load"]["duration_s"],
            "batch_size": eager["batch_size"], "levels": rows, "summary": summary,
            "basis": "closed loop per level, model stage only (requests preprocessed beforehand, as the "
                     "artifact has no Python preprocess); p50 ratio = artifact / eager, 95% bootstrap CI"}


def _load_side(level: dict[str, Any], first: dict[str, Any]) -> dict[str, Any]:
    rps = level["throughput"]["requests_per_s"]
    return {"requests_per_s": rps, "scaling": _div(rps, first["throughput"]["requests_per_s"]),
            "p50": level["latency"]["p50"], "p99": level["latency"]["p99"],
            "cpu_utilisation": (level.get("cpu") or {}).get("utilisation"), "peak_rss_bytes": level.get("peak_rss_bytes")}


def _div(a: Any, b: Any) -> float | None:
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "?"
