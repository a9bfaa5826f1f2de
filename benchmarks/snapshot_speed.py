"""How fast is ``parity snapshot`` next to the tools people use instead?

In one run, on one environment, this times (wall clock, each as a fresh process):

- ``parity snapshot -o FILE``            (default: no torch import)
- ``python -m pip freeze``               (reference 1: holds far less)
- ``python -m torch.utils.collect_env``  (reference 2: imports torch, shells out)
- ``parity snapshot --runtime -o FILE``  (imports torch in the measured interpreter)
- ``python -c "import torch"``           (reference 3: the floor for --runtime)

Repetitions are interleaved (each round runs every command once, in a shuffled order)
so that load on a shared machine hits all commands alike. Each run is measured twice:
wall clock, and CPU time (user + system of the child, from ``getrusage``), which a
crowded machine disturbs far less than wall clock. Targets are checked on the median
of per-round *paired* ratios/differences (same round, so the same load), for both
clocks: snapshot <= 0.5 x pip freeze, snapshot <= 0.2 x collect_env, --runtime within
0.3 s of ``import torch``.

Usage: ``.venv/bin/python benchmarks/snapshot_speed.py [--repeat 5] [--runtime-repeat 15]
[--python PATH] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGETS = {"vs_pip_freeze": 0.5, "vs_collect_env": 0.2, "runtime_minus_import_torch_s": 0.3}


def commands(python: Path, parity: Path, out: Path) -> dict[str, list[str]]:
    return {
        "parity snapshot": [str(parity), "snapshot", "-o", str(out)],
        "pip freeze": [str(python), "-m", "pip", "freeze"],
        "collect_env": [str(python), "-m", "torch.utils.collect_env"],
        "parity snapshot --runtime": [str(parity), "snapshot", "--runtime", "-o", str(out)],
        "import torch": [str(python), "-c", "import torch"],
    }


CLOCKS = ("wall", "cpu")


def time_once(argv: list[str]) -> dict[str, float]:
    """Wall-clock and CPU seconds (user + system of the child process) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


RUNTIME_PAIR = ("parity snapshot --runtime", "import torch")


def measure(cmds: dict[str, list[str]], repeat: int, runtime_repeat: int, seed: int) -> list[dict[str, dict[str, float]]]:
    """Interleaved rounds after one untimed warm-up round (page cache, .pyc files);
    one dict per round: command -> {"wall", "cpu"}.

    ``repeat`` rounds run every command; ``runtime_repeat`` extra rounds run only the
    --runtime / import torch pair: a 0.3 s target on a ~3 s process needs more pairs
    than the ratio targets do, and collect_env is too slow to repeat that often.
    """
    rng = random.Random(seed)
    for argv in cmds.values():
        time_once(argv)
    rounds = []
    for i in range(repeat + runtime_repeat):
        order = list(cmds) if i < repeat else list(RUNTIME_PAIR)
        rng.shuffle(order)
        rounds.append({name: time_once(cmds[name]) for name in order})
    return rounds


def summarize(rounds: list[dict[str, dict[str, float]]]) -> dict[str, object]:
    """Medians per command and clock, and medians of per-round paired comparisons."""
    names = list(rounds[0])
    full = [r for r in rounds if len(r) == len(names)]
    med = {clock: {n: statistics.median(r[n][clock] for r in rounds if n in r) for n in names} for clock in CLOCKS}
    paired: dict[str, dict[str, float]] = {}
    spread: dict[str, list[float]] = {}
    for clock in CLOCKS:
        runtime_diffs = [r[RUNTIME_PAIR[0]][clock] - r[RUNTIME_PAIR[1]][clock] for r in rounds]
        paired[clock] = {
            "vs_pip_freeze": statistics.median(r["parity snapshot"][clock] / r["pip freeze"][clock] for r in full),
            "vs_collect_env": statistics.median(r["parity snapshot"][clock] / r["collect_env"][clock] for r in full),
            "runtime_minus_import_torch_s": statistics.median(runtime_diffs),
        }
        quartiles = statistics.quantiles(runtime_diffs, n=4) if len(runtime_diffs) > 1 else [0.0, 0.0, 0.0]
        spread[clock] = [quartiles[0], quartiles[2]]
    met = {clock: {k: paired[clock][k] <= TARGETS[k] for k in TARGETS} for clock in CLOCKS}
    return {"median_s": med, "paired": paired, "runtime_diff_iqr_s": spread, "targets": TARGETS, "met": met,
            "rounds": rounds}


def markdown(result: dict[str, Any], repeat: int) -> str:
    med, paired, met = result["median_s"], result["paired"], result["met"]
    lines = [f"| command ({repeat} interleaved rounds; torch pair in all) | median wall s | median CPU s |", "|---|---|---|"]
    lines += [f"| `{n}` | {med['wall'][n]:.3f} | {med['cpu'][n]:.3f} |" for n in med["wall"]]
    labels = {
        "vs_pip_freeze": ("snapshot / pip freeze <= 0.5", "{:.2f}x"),
        "vs_collect_env": ("snapshot / collect_env <= 0.2", "{:.3f}x"),
        "runtime_minus_import_torch_s": ("--runtime - import torch <= 0.3 s", "{:+.3f} s"),
    }
    lines += ["", "| target (median of paired rounds) | wall | met | CPU | met |", "|---|---|---|---|---|"]
    for key, (label, fmt) in labels.items():
        cells = [f"{fmt.format(paired[c][key])} | {'yes' if met[c][key] else 'NO'}" for c in CLOCKS]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    iqr = result["runtime_diff_iqr_s"]
    lines.append("")
    lines.append(f"--runtime - import torch, interquartile range of the {len(result['rounds'])} pairs: "
                 f"wall {iqr['wall'][0]:+.3f}..{iqr['wall'][1]:+.3f} s, CPU {iqr['cpu'][0]:+.3f}..{iqr['cpu'][1]:+.3f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds of every command (default 5)")
    parser.add_argument("--runtime-repeat", type=int, default=15,
                        help="extra rounds of only --runtime vs import torch (default 15)")
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="interpreter of the measured env")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    parity = args.python.parent / "parity"
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(args.python, parity, Path(tmp) / "snap.json")
        rounds = measure(cmds, args.repeat, args.runtime_repeat, args.seed)
    result: dict[str, Any] = summarize(rounds)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    result["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"machine: {result['machine']}; load average {result['load_average']}; env: {args.python}\n")
        print(markdown(result, args.repeat))
    return 0 if all(all(m.values()) for m in result["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
