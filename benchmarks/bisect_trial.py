"""How long one bisect trial environment takes to build: overlay vs full-venv fallback.

Builds tiny wheels (the same kind the tests use) into a temporary find-links folder,
a good venv holding their 1.0 versions, then, interleaved for ``--reps`` rounds:

- overlay: 8 bad-side packages installed with ``uv pip install --no-deps --target``
  into a fresh trial folder (uv's cache warm: a first round is discarded);
- overlay-real (with ``--real``): the same for real wheels, e.g. numpy and tokenizers,
  from the index your uv configuration or ``--index-url`` names;
- venv: the full-venv fallback (new venv + all 16 packages from the lock);
- reference: ``python -c "import torch"`` in this interpreter, the floor of any
  oracle that runs a model, so the figures read as "a trial build costs X imports".

Prints medians and ratios to the reference (JSON with --json). Run by hand:

    .venv/bin/python benchmarks/bisect_trial.py --reps 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "bisect"))

from tinywheels import build_wheel, make_good_venv  # noqa: E402

from parity.bisection.search import requirement_lines  # noqa: E402
from parity.bisection.trials import IndexOptions, TrialBuilder, UvInstaller, find_uv  # noqa: E402

NAMES = [f"pkg-{i:02d}" for i in range(16)]


def _snapshot(packages: dict[str, str | None]) -> dict:
    return {"schema": "parity.snapshot/1", "python": {"version": ".".join(map(str, sys.version_info[:3]))},
            "platform": {"system": "Linux"}, "packages": {n: {"name": n, "version": v} for n, v in packages.items() if v}}


def _builder(python: Path, wheels: Path, cache: Path, index: IndexOptions) -> TrialBuilder:
    uv = find_uv()
    assert uv, "uv is needed"
    base = {n: "1.0" for n in NAMES}
    return TrialBuilder(python, base, index, cache, UvInstaller(uv),
                        lambda wanted: requirement_lines(_snapshot({**base, **wanted})))


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--real", nargs="*", default=[], help="real requirements for overlay-real, e.g. numpy==2.4.6")
    ap.add_argument("--index-url", help="index for --real [default: your uv configuration]")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="parity-bisect-bench-") as tmp:
        root = Path(tmp)
        wheels = root / "wheels"
        wheels.mkdir()
        for name in NAMES:
            build_wheel(wheels, name, "1.0")
            build_wheel(wheels, name, "2.0")
        python = make_good_venv(root, wheels, {n: "1.0" for n in NAMES})
        tiny = IndexOptions((str(wheels),), no_index=True)
        real = IndexOptions(index_url=args.index_url)
        wanted = {n: ("2.0" if i % 2 else "1.0") for i, n in enumerate(NAMES)}
        gone = {**wanted, NAMES[0]: None}
        counter = iter(range(10_000))

        def fresh() -> Path:
            return root / f"cache-{next(counter)}"

        tasks: dict[str, Callable[[], object]] = {
            "overlay": lambda: _builder(python, wheels, fresh(), tiny).build(wanted),
            "venv": lambda: _builder(python, wheels, fresh(), tiny).build(gone),
            "reference_import_torch": lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True),
        }
        if args.real:
            installer = UvInstaller(find_uv() or "uv")
            tasks["overlay_real"] = lambda: installer.install_target(python, fresh(), args.real, real)
        for task in tasks.values():  # warm uv's cache and the OS page cache; not counted
            task()
        samples: dict[str, list[float]] = {k: [] for k in tasks}
        for _ in range(args.reps):
            for key, task in tasks.items():
                samples[key].append(_timed(task))
    ref = statistics.median(samples["reference_import_torch"])
    report = {
        "reps": args.reps, "real": args.real,
        "median_seconds": {k: round(statistics.median(v), 4) for k, v in samples.items()},
        "ratio_to_import_torch": {k: round(statistics.median(v) / ref, 2) for k, v in samples.items()},
        "venv_over_overlay": round(statistics.median(samples["venv"]) / statistics.median(samples["overlay"]), 2),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key in samples:
            print(f"{key:>24}: median {report['median_seconds'][key]:.3f} s  "
                  f"({report['ratio_to_import_torch'][key]:.2f} x import torch)")
        print(f"{'venv / overlay':>24}: {report['venv_over_overlay']:.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
