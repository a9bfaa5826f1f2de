"""Compare a benchmark against a baseline: per-stage ratio, verdict, attribution.

For each stage both runs timed, the ratio of medians (current / baseline, above 1 is
slower) gets a seeded bootstrap confidence interval over the raw samples. A stage is
*slower* only when the whole interval lies above ``1 + margin`` and the median grew by
more than ``MIN_ABS_CHANGE`` seconds; it is a *regression* (exit 1) when the interval
lies above ``1 + max_slowdown`` as well.

The margin exists because the bootstrap sees the noise *inside* each run, not the
drift *between* two runs taken at different times on a shared machine. It is
``NOISE_MARGIN`` (5%) on a quiet machine and grows to the stage's own spread,
IQR/median of the noisier run, when that is larger: a run whose calls spread by 30%
cannot establish a 10% shift against a run taken a minute earlier, and saying "no
significant change (noisy)" is then the honest answer. The margin used is reported
per stage.

The machine itself can move timings between runs: other work on the CPUs, steal,
throttling. Each run carries its machine state (:mod:`parity.benchmark.machine`), and
when either was disturbed the comparison widens the bar by the *drift*, how much the
machine may have inflated a run's times (from the canary's ratio and the CPU contention,
times a safety factor). A stage that would be slower on a quiet machine but whose
interval does not clear the widened bar is *inconclusive*, with the reason; a
regression (exit 1) needs the interval above ``(1 + max_slowdown) x drift``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity._io import read_json
from parity.benchmark import stats
from parity.benchmark.attribution import attribute
from parity.benchmark.load import load_pairs
from parity.benchmark.machine import Drift, machine_drift
from parity.benchmark.protocol import END_TO_END, SCHEMA, STAGES, BenchResult, bench
from parity.errors import BenchError, ParityError
from parity.progress import ProgressFn

COMPARISON_SCHEMA = "parity.bench-comparison/1"
DEFAULT_MAX_SLOWDOWN = 0.10
#: Relative changes inside this margin are run-to-run drift, not a finding.
NOISE_MARGIN = 0.05
#: Median changes under this many seconds per call are below what scheduler jitter
#: reliably separates, and below what a serving budget notices.
MIN_ABS_CHANGE = 20e-6
_STAGE_ORDER = (*STAGES, END_TO_END)
#: A class defined in a TARGET file lives in a module named after the file's path
#: (``_parity_target_<digest>``; older parity versions used a per-process number): two
#: runs of the same file in other folders or processes still benchmark the same class.
_TARGET_MODULE = re.compile(r"^_parity_target_[0-9a-f]+\.")


@dataclass(frozen=True)
class StageComparison:
    """One stage: medians, ratio with its CI, verdict."""

    stage: str
    baseline_p50: float
    current_p50: float
    ratio: float
    ci: tuple[float, float]
    verdict: str  # "faster" | "slower" | "no significant change" | "inconclusive"
    regression: bool
    noisy: bool
    margin: float = NOISE_MARGIN
    drift: float = 1.0  # how much the machine may have inflated the current run's times

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "baseline_p50": self.baseline_p50, "current_p50": self.current_p50,
                "ratio": self.ratio, "ci": list(self.ci), "verdict": self.verdict,
                "regression": self.regression, "noisy": self.noisy, "margin": self.margin, "drift": self.drift}


@dataclass
class BenchComparison:
    """Current vs baseline: stage verdicts and the environment differences to suspect."""

    stages: list[StageComparison]
    max_slowdown: float
    attribution: list[dict[str, Any]] | None
    baseline: dict[str, Any]
    current: dict[str, Any]
    forced_mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    machine: Drift = field(default_factory=lambda: Drift(1.0, 1.0, None, []))

    @property
    def slower_stages(self) -> list[str]:
        return [s.stage for s in self.stages if s.verdict == "slower"]

    @property
    def regression(self) -> bool:
        """True when a stage is significantly slower than ``max_slowdown`` (exit 1)."""
        return any(s.regression for s in self.stages)

    @property
    def verdict(self) -> str:
        if self.regression:
            return "regression"
        if self.slower_stages:
            return "slower"
        if any(s.verdict == "inconclusive" for s in self.stages):
            return "inconclusive"
        if any(s.verdict == "faster" for s in self.stages):
            return "faster"
        return "no significant change"

    @property
    def reason(self) -> str:
        """One sentence a manager can read."""
        worst = max(self.stages, key=lambda s: s.ratio)
        if self.verdict in ("regression", "slower"):
            slow = [s for s in self.stages if s.verdict == "slower" and s.stage != END_TO_END] or [worst]
            top = max(slow, key=lambda s: s.ratio)
            suspect = self._top_suspect()
            because = f"; first suspect: {suspect}" if suspect else ""
            return f"{top.stage} is {top.ratio:.2f}x the baseline time{because}."
        if self.verdict == "inconclusive":
            return self._inconclusive_reason()
        if self.verdict == "faster":
            return "no stage is slower; at least one is significantly faster."
        noisy = max((s.margin for s in self.stages if s.noisy), default=None)
        caveat = f"; timings are noisy, so changes under {noisy:.0%} cannot show" if noisy else ""
        return f"no stage changed significantly (largest ratio {worst.ratio:.2f}x){caveat}."

    def _inconclusive_reason(self) -> str:
        top = max((s for s in self.stages if s.verdict == "inconclusive"), key=lambda s: s.ratio)
        bar = (1 + self.max_slowdown) * top.drift
        return (f"{top.stage} is {top.ratio:.2f}x the baseline time, but the machine was not quiet "
                f"({'; '.join(self.machine.reasons) or 'timings too noisy'}): a slowdown under {bar:.2f}x "
                "cannot be told from that; re-run on a quiet machine.")

    def _top_suspect(self) -> str | None:
        if not self.attribution or not self.attribution[0].get("touches_slower_stage"):
            return None
        d = self.attribution[0]
        return f"{d.get('category')} {d.get('name')} {d.get('a')} -> {d.get('b')}"

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": COMPARISON_SCHEMA,
            "verdict": self.verdict,
            "reason": self.reason,
            "regression": self.regression,
            "max_slowdown": self.max_slowdown,
            "noise_margin": NOISE_MARGIN,  # the quiet-machine floor; each stage has its own "margin"
            "stages": [s.to_json() for s in self.stages],
            "slower_stages": self.slower_stages,
            "attribution": self.attribution,
            "baseline": self.baseline,
            "current": self.current,
            "forced_mismatches": self.forced_mismatches,
            "warnings": self.warnings,
            "machine": self.machine.to_json(),
        }


# --------------------------------------------------------------------------- public API


def compare_bench(
    current: BenchResult | Mapping[str, Any],
    baseline: BenchResult | Mapping[str, Any],
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    *,
    force: bool = False,
    seed: int = 0,
) -> BenchComparison:
    """Compare ``current`` against ``baseline`` (BenchResults or ``parity.bench/1`` dicts).

    ``max_slowdown`` is a fraction (0.10 = 10%). A baseline of another model or batch
    size raises :class:`BenchError` unless ``force``; then the mismatches are listed
    in the result.
    """
    _check_max_slowdown(max_slowdown)
    cur = validated_bench(current, "the current benchmark")
    base = validated_bench(baseline, "the baseline")
    mismatches = comparability_problems(cur, base)
    if mismatches and not force:
        raise BenchError(f"baseline is not comparable: {'; '.join(mismatches)}",
                         fix="benchmark the same model and batch size as the baseline, or pass --force")
    drift = machine_drift(cur.get("machine"), base.get("machine"))
    if "load" in cur or "load" in base:  # concurrency levels / LoadGen scenarios: per-level latencies
        pairs = load_pairs(cur, base)
    else:
        pairs = {n: (cur["stages"][n]["samples"], base["stages"][n]["samples"]) for n in _shared_stages(cur, base)}
    stages = [_compare_stage(name, c, b, max_slowdown, seed, drift) for name, (c, b) in pairs.items()]
    if not stages:
        raise BenchError("the baseline and the current run share no timed stage",
                         fix="benchmark the same pipeline as the baseline")
    attribution, env_problem = _attribution(cur, base, [s.stage for s in stages if s.verdict == "slower"])
    return BenchComparison(
        stages=stages, max_slowdown=max_slowdown, attribution=attribution,
        baseline=_run_summary(base), current=_run_summary(cur), forced_mismatches=mismatches,
        warnings=_comparison_warnings(cur, base, stages) + env_problem, machine=drift,
    )


def _attribution(cur: Mapping[str, Any], base: Mapping[str, Any],
                 slower: list[str]) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """Ranked suspects; a malformed embedded snapshot costs the attribution, not the verdict."""
    try:
        return attribute(base.get("env"), cur.get("env"), slower), []
    except ParityError as exc:
        return None, [f"no attribution: an embedded environment snapshot is unreadable ({exc.message})"]


def _check_max_slowdown(max_slowdown: float) -> None:
    if not (max_slowdown >= 0 and math.isfinite(max_slowdown)):
        raise BenchError(f"--max-slowdown: {max_slowdown!r} is not a slowdown >= 0",
                         fix="pass a percentage >= 0 on the CLI (10 = 10%), a fraction in the API (0.10)")


def verify_performance(pipeline: Any, inputs: Any, baseline_json: Mapping[str, Any],
                       max_slowdown: float = DEFAULT_MAX_SLOWDOWN, progress: ProgressFn | None = None
                       ) -> dict[str, Any]:
    """Re-measure ``pipeline`` with the baseline's config and compare (for ``parity verify``).

    Returns ``BenchComparison.to_json()``; raises :class:`BenchError` when the baseline
    is unreadable or of another model or batch size.
    """
    base = validated_bench(baseline_json, "the record's bench.json")
    current = bench(pipeline, inputs, progress=progress, **_baseline_options(base))
    return compare_bench(current, base, max_slowdown).to_json()


def bench_from_file(path: str | Path) -> dict[str, Any]:
    """A validated ``parity.bench/1`` document from a file or a record directory's bench.json."""
    path = Path(path)
    if path.is_dir():
        path = path / "bench.json"
        if not path.is_file():
            raise BenchError(f"{path}: the record has no benchmark",
                             fix="record with `parity record --bench`, or pass a bench JSON file")
    fix = "pass a file written by `parity bench -o FILE`"
    try:
        doc = read_json(path, "a bench result", fix=fix)
    except ParityError as exc:
        raise BenchError(exc.message, fix=exc.fix) from None
    return validated_bench(doc, str(path))


def validated_bench(doc: BenchResult | Mapping[str, Any], source: str) -> dict[str, Any]:
    """``doc`` as a dict, checked to hold what a comparison needs; BenchError otherwise."""
    if isinstance(doc, BenchResult):
        return doc.to_json()
    fix = "pass a file written by `parity bench -o FILE`"
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, Mapping) else type(doc).__name__
        raise BenchError(f"{source}: not a {SCHEMA} result (schema: {found!r})", fix=fix)
    if not isinstance(doc.get("batch_size"), int) or not isinstance(doc.get("stages"), Mapping):
        raise BenchError(f"{source}: missing batch_size or stages", fix=fix)
    for name, stage in doc["stages"].items():
        samples = stage.get("samples") if isinstance(stage, Mapping) else None
        if not isinstance(samples, list) or not samples or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in samples
        ):
            raise BenchError(f"{source}: stage {name!r} has no valid raw samples", fix=fix)
    config = doc.get("config", {})
    if not isinstance(config, Mapping) or not all(
        v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in config.values()
    ):
        raise BenchError(f"{source}: config must map option names to numbers", fix=fix)
    return dict(doc)


def comparability_problems(current: Mapping[str, Any], baseline: Mapping[str, Any]) -> list[str]:
    """Why the two runs measure different things (empty list: comparable)."""
    problems = []
    if current.get("batch_size") != baseline.get("batch_size"):
        problems.append(f"batch size {current.get('batch_size')} vs baseline {baseline.get('batch_size')}")
    cur_model, base_model = current.get("model") or {}, baseline.get("model") or {}
    for key in ("class", "parameters", "name"):
        a, b = cur_model.get(key), base_model.get(key)
        if key == "class" and isinstance(a, str) and isinstance(b, str):
            a, b = _TARGET_MODULE.sub("<target file>.", a), _TARGET_MODULE.sub("<target file>.", b)
        if a is not None and b is not None and a != b:
            problems.append(f"model {key} {a!r} vs baseline {b!r}")
    return problems


# --------------------------------------------------------------------------- helpers


def _shared_stages(cur: Mapping[str, Any], base: Mapping[str, Any]) -> list[str]:
    names = [s for s in _STAGE_ORDER if s in cur["stages"] and s in base["stages"]]
    extra = sorted((set(cur["stages"]) & set(base["stages"])) - set(names))
    return names + extra


def _compare_stage(name: str, current: list[float], baseline: list[float], max_slowdown: float,
                   seed: int, drift: Drift) -> StageComparison:
    ratio, low, high = stats.bootstrap_median_ratio(current, baseline, seed=seed)
    cur_p50, base_p50 = stats.quantile(current, 0.5), stats.quantile(baseline, 0.5)
    spread = max(_relative_iqr(current), _relative_iqr(baseline))
    margin = max(NOISE_MARGIN, spread)
    big_enough = abs(cur_p50 - base_p50) > MIN_ABS_CHANGE
    regression = False
    if big_enough and low > 1 + margin:  # slower, were the machine quiet
        beyond_drift = low > (1 + margin) * drift.slow
        regression = beyond_drift and low > (1 + max_slowdown) * drift.slow
        # Beyond the machine's drift, or (under it) a change that would not even fail the gate.
        clear = beyond_drift and (regression or low <= 1 + max_slowdown)
        verdict = "slower" if clear else "inconclusive"
    elif big_enough and high < 1 / (1 + margin):
        verdict = "faster" if high < 1 / ((1 + margin) * drift.fast) else "inconclusive"
    else:
        verdict = "no significant change"
    return StageComparison(name, base_p50, cur_p50, ratio, (low, high), verdict, regression,
                           spread > stats.NOISY_IQR_RATIO, margin, drift.slow)


def _relative_iqr(samples: list[float]) -> float:
    med = stats.quantile(samples, 0.5)
    return stats.iqr(samples) / med if med > 0 else 0.0


def _run_summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The identifying facts of one side, for the report header."""
    return {k: doc.get(k) for k in ("target", "created", "batch_size", "items", "model", "threads", "config")}


def _comparison_warnings(cur: Mapping[str, Any], base: Mapping[str, Any], stages: list[StageComparison]) -> list[str]:
    noisy = [s.stage for s in stages if s.noisy]
    out = [f"noisy timings in {', '.join(noisy)}: changes inside the noise margin are not findings"] if noisy else []
    if not base.get("env") or not cur.get("env"):
        out.append("a run has no embedded environment snapshot: no attribution possible")
    only = sorted(set(cur["stages"]) ^ set(base["stages"]))
    if only:
        out.append(f"stages timed on one side only (not compared): {', '.join(only)}")
    return out


def bench_against(
    target: Any,
    inputs: Any = None,
    *,
    against: str | Path | None = None,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    force: bool = False,
    **bench_options: Any,
) -> tuple[BenchResult, BenchComparison | None]:
    """Benchmark ``target`` and, with ``against``, compare it to that baseline file.

    The baseline is read and checked before anything runs. Options left as None
    (``batch_size``, ``threads``, ``min_time``, ``min_iters``, ``max_warmup``) take the
    baseline's values, so both runs measure the same thing; an explicit batch size
    that differs is refused unless ``force``.
    """
    _check_max_slowdown(max_slowdown)
    options = {k: v for k, v in bench_options.items() if v is not None}
    baseline = bench_from_file(against) if against is not None else None
    if baseline is not None:
        options = {**_baseline_options(baseline), **options}
        if options["batch_size"] != baseline["batch_size"] and not force:
            raise BenchError(f"--batch-size {options['batch_size']} differs from the baseline's "
                             f"{baseline['batch_size']} ({against})",
                             fix="drop --batch-size to use the baseline's, or pass --force")
    result = bench(target, inputs, **options)
    comparison = compare_bench(result, baseline, max_slowdown, force=force) if baseline is not None else None
    return result, comparison


def _baseline_options(baseline: Mapping[str, Any]) -> dict[str, Any]:
    cfg = baseline.get("config") or {}
    keep = {k: cfg[k] for k in ("threads", "min_time", "min_iters", "max_warmup") if cfg.get(k) is not None}
    return {"batch_size": baseline["batch_size"], **keep}
