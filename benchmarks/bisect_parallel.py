"""Wall time of a bisect on the 16-change world for --parallel K = 1, 2, 4 (threads and Ray).

The world is the tests' (tests/bisection/tinywheels.py): 16 tiny packages at 1.0 (good)
and 2.0 (bad), one culprit, a real good venv, real uv installs from a find-links folder.
Those trials cost a tenth of a second, so every oracle run also sleeps ``--trial-seconds``
(default 2 s): a stand-in for a real oracle (`parity verify` of a model) that takes
seconds to minutes, which is what parallel trials are for. Each bisect gets a fresh
trial cache (builds count). K = 1 is the sequential search (no --parallel).

Ray: ``ray.init()`` starts a local cluster once (its start-up is reported apart); a trial
task takes one CPU, so on Ray K is capped by the cluster's CPUs.

    .venv/bin/python benchmarks/bisect_parallel.py --reps 1 [--no-ray] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "bisection"))

from tinywheels import ORACLE, build_wheel, make_good_venv, write_snapshot  # noqa: E402

from parity.bisection import IndexOptions, bisect  # noqa: E402

NAMES = [f"pkg-{i:02d}" for i in range(16)]
CULPRITS = ["pkg-00", "pkg-07", "pkg-13"]


def _world(root: Path) -> tuple[Path, Path, Path]:
    wheels = root / "wheels"
    wheels.mkdir()
    for name in NAMES:
        build_wheel(wheels, name, "1.0")
        build_wheel(wheels, name, "2.0", "BROKEN = True\n")
    python = make_good_venv(root, wheels, {n: "1.0" for n in NAMES})
    good = write_snapshot(root / "good.json", {n: "1.0" for n in NAMES}, python=str(python))
    bad = write_snapshot(root / "bad.json", {n: "2.0" for n in NAMES}, python=str(python))
    return good, bad, wheels


def _run(root: Path, good: Path, bad: Path, wheels: Path, culprit: str, k: int, ray: bool, n: int,
         oracle: Path) -> tuple[float, list[str], int, int]:
    start = time.perf_counter()
    result = bisect(good, bad, command=["python", str(oracle), culprit], index=IndexOptions((str(wheels),),
                    no_index=True), cache_dir=root / f"cache-{n}", parallel=None if k == 1 and not ray else k,
                    ray="" if ray else None)
    seconds = time.perf_counter() - start
    unused = (result.parallel or {}).get("speculative", 0)
    return seconds, [c.name for c in result.culprits], len(result.trials), unused


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--trial-seconds", type=float, default=2.0)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    report: dict[str, object] = {"cpus": os.cpu_count(), "trial_seconds": args.trial_seconds, "reps": args.reps,
                                 "culprits": CULPRITS}
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="parity-bisect-parallel-") as tmp:
        root = Path(tmp)
        good, bad, wheels = _world(root)
        oracle = root / "oracle.py"
        oracle.write_text(f"import time; time.sleep({args.trial_seconds})\n" + ORACLE, encoding="utf-8")
        backends = [("threads", False)] + ([] if args.no_ray else [("ray", True)])
        counter = iter(range(100_000))
        for backend, ray in backends:
            if ray:
                import ray as ray_mod

                t0 = time.perf_counter()
                ray_mod.init(log_to_driver=False, include_dashboard=False)
                report["ray_start_seconds"] = round(time.perf_counter() - t0, 2)
            for k in (1, 2, 4):
                samples, trials, unused = [], [], []
                for _ in range(args.reps):
                    for culprit in CULPRITS:
                        s, found, n_trials, n_unused = _run(root, good, bad, wheels, culprit, k, ray,
                                                            next(counter), oracle)
                        assert found == [culprit], (backend, k, culprit, found)
                        samples.append(s)
                        trials.append(n_trials)
                        unused.append(n_unused)
                rows.append({"backend": backend if (k > 1 or ray) else "sequential", "k": k,
                             "median_seconds": round(statistics.median(samples), 2),
                             "samples": [round(x, 2) for x in samples], "trials": trials, "speculative": unused})
            if ray:
                ray_mod.shutdown()
    report["rows"] = rows
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for row in rows:
            print(f"{row['backend']:>10} K={row['k']}: median {row['median_seconds']:.2f} s "
                  f"(samples {row['samples']}, trials {row['trials']}, speculative {row['speculative']})")
        if "ray_start_seconds" in report:
            print(f"ray.init() local cluster start: {report['ray_start_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
