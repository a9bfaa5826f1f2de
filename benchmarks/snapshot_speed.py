"""How fast is ``parity snapshot`` next to the tools people use instead?

In one run, on one environment, this times (wall clock, each as a fresh process):

- ``parity snapshot -o FILE``            (default: no torch import)
- ``python -m pip freeze``               (reference 1: holds far less)
- ``python -m torch.utils.collect_env``  (reference 2: imports torch, shells out)
- ``parity snapshot --runtime -o FILE``  (imports torch in the measured interpreter)
- ``python -c "import torch"``           (reference 3: the floor for --runtime)

Repetitions are interleaved (each round runs every command once, in a shuffled order)
so that load on a shared machine hits all commands alike; medians are reported, and
the targets are checked as ratios/differences of medians from the same run:
snapshot <= 0.5 x pip freeze, snapshot <= 0.2 x collect_env, --runtime within 0.3 s of
``import torch``.

Usage: ``.venv/bin/python benchmarks/snapshot_speed.py [--repeat 7] [--python PATH] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"vs_pip_freeze": 0.5, "vs_collect_env": 0.2, "runtime_minus_import_torch_s": 0.3}


def commands(python: Path, parity: Path, out: Path) -> dict[str, list[str]]:
    return {
        "parity snapshot": [str(parity), "snapshot", "-o", str(out)],
        "pip freeze": [str(python), "-m", "pip", "freeze"],
        "collect_env": [str(python), "-m", "torch.utils.collect_env"],
        "parity snapshot --runtime": [str(parity), "snapshot", "--runtime", "-o", str(out)],
        "import torch": [str(python), "-c", "import torch"],
    }


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed


def measure(cmds: dict[str, list[str]], repeat: int, seed: int) -> dict[str, list[float]]:
    """Interleaved rounds after one untimed warm-up round (page cache, .pyc files)."""
    rng = random.Random(seed)
    for argv in cmds.values():
        time_once(argv)
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(repeat):
        order = list(cmds)
        rng.shuffle(order)
        for name in order:
            samples[name].append(time_once(cmds[name]))
    return samples


def summarize(samples: dict[str, list[float]]) -> dict[str, object]:
    med = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {
        "vs_pip_freeze": med["parity snapshot"] / med["pip freeze"],
        "vs_collect_env": med["parity snapshot"] / med["collect_env"],
        "runtime_minus_import_torch_s": med["parity snapshot --runtime"] - med["import torch"],
    }
    met = {key: ratios[key] <= TARGETS[key] for key in TARGETS}
    return {"median_s": med, "samples_s": samples, "ratios": ratios, "targets": TARGETS, "met": met}


def markdown(result: dict[str, object], repeat: int) -> str:
    med: dict[str, float] = result["median_s"]  # type: ignore[assignment]
    ratios: dict[str, float] = result["ratios"]  # type: ignore[assignment]
    met: dict[str, bool] = result["met"]  # type: ignore[assignment]
    lines = [f"| command | median s ({repeat} interleaved runs) |", "|---|---|"]
    lines += [f"| `{name}` | {value:.3f} |" for name, value in med.items()]
    lines += [
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| snapshot / pip freeze <= 0.5 | {ratios['vs_pip_freeze']:.2f}x | {'yes' if met['vs_pip_freeze'] else 'NO'} |",
        f"| snapshot / collect_env <= 0.2 | {ratios['vs_collect_env']:.3f}x | {'yes' if met['vs_collect_env'] else 'NO'} |",
        f"| --runtime - import torch <= 0.3 s | {ratios['runtime_minus_import_torch_s']:+.3f} s | "
        f"{'yes' if met['runtime_minus_import_torch_s'] else 'NO'} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="interpreter of the measured env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    parity = args.python.parent / "parity"
    with tempfile.TemporaryDirectory() as tmp:
        samples = measure(commands(args.python, parity, Path(tmp) / "snap.json"), args.repeat, args.seed)
    result = summarize(samples)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}; env: {args.python}\n")
        print(markdown(result, args.repeat))
    return 0 if all(result["met"].values()) else 1  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
