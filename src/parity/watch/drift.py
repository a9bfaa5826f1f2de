"""Live layer statistics against the golden record's per-layer ranges: a heuristic signal.

The golden record holds, per layer and per batch, the output's min, max, mean and std.
Their spread across the golden batches is the layer's *golden range*. The sampled
requests of the last ``window`` samples are pooled per layer and each layer gets a
*drift score*, the largest of:

- ``mean``: how far the pooled mean lies outside the golden means, in golden stds;
- ``std``: how far the pooled std lies outside the golden stds, in doublings (log2);
- ``range``: how far the pooled min/max lie outside the golden min..max, in widths of it;
- ``nan`` / ``inf`` / ``shape``: 100 when the live outputs hold NaN/Inf the golden ones
  never did, or a rank or last dimension the golden record never saw.

0 means inside every golden range; at or above ``threshold`` (default 1) a layer is
reported *out of range*. Real traffic is not the golden inputs, so a score is a reason to
look, never a verdict: the verdict is the golden canary's.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from parity.watch.sampling import Row, Sample, stats_figures

BIG = 100.0  # the score of a qualitative change (NaN, Inf, shape)


@dataclass(frozen=True)
class GoldenRange:
    """One layer's spread over the golden record's batches."""

    mean: tuple[float, float]
    std: tuple[float, float]
    low: float
    high: float
    scale: float  # the golden std, the unit of the mean score
    nonfinite: bool
    shapes: frozenset[tuple[int, int]]  # (rank, last dimension)

    def to_json(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "min": self.low, "max": self.high}


def golden_ranges(entries: Iterable[Mapping[str, Any]]) -> dict[str, GoldenRange]:
    """{layer key: GoldenRange} from a record's layer entries (those with stats)."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        stats = entry.get("stats")
        if isinstance(stats, Mapping) and stats.get("mean") is not None:
            grouped.setdefault(str(entry.get("key")), []).append(entry)
    return {key: _range(rows) for key, rows in grouped.items()}


def _range(rows: list[Mapping[str, Any]]) -> GoldenRange:
    stats = [r["stats"] for r in rows]
    means = [float(s["mean"]) for s in stats]
    stds = [float(s["std"]) for s in stats]
    low, high = min(float(s["min"]) for s in stats), max(float(s["max"]) for s in stats)
    scale = sorted(stds)[len(stds) // 2]
    if not scale > 0:
        scale = max(abs(high - low), abs(high), abs(low), 1e-12)
    shapes = frozenset((len(r.get("shape") or []), int((r.get("shape") or [0])[-1] if r.get("shape") else 0))
                       for r in rows)
    nonfinite = any(int(s.get("nan") or 0) or int(s.get("inf") or 0) for s in stats)
    return GoldenRange((min(means), max(means)), (min(stds), max(stds)), low, high, scale, nonfinite, shapes)


@dataclass
class LayerDrift:
    layer: str
    score: float
    component: str  # which test gave the score
    samples: int
    live: dict[str, Any]
    golden: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "score": round(self.score, 6), "component": self.component,
                "samples": self.samples, "live": self.live, "golden": self.golden}


class _Window:
    """The last ``size`` samples of one layer: one tuple each (mean, std, min, max, NaN,
    Inf, shape unseen), pooled when read, so that a sampled call only appends."""

    __slots__ = ("rows",)

    def __init__(self, size: int) -> None:
        self.rows: deque[tuple[float, float, float, float, int, int, bool]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self.rows)

    def pooled(self) -> dict[str, Any]:
        means, stds, mins, maxs, nan, inf, bad = zip(*list(self.rows))
        n = len(means)
        return {"mean": sum(means) / n, "std": sum(stds) / n, "min": min(mins), "max": max(maxs),
                "nan": sum(nan), "inf": sum(inf), "shape_ok": not any(bad)}


def score(g: GoldenRange, live: Mapping[str, Any]) -> tuple[float, str]:
    """(drift score, component) of pooled live stats against a golden range."""
    if not g.nonfinite and (live["nan"] or live["inf"]):
        return BIG, "nan" if live["nan"] else "inf"
    if not live["shape_ok"]:
        return BIG, "shape"
    mean, std = float(live["mean"]), float(live["std"])
    parts = {"mean": max(0.0, g.mean[0] - mean, mean - g.mean[1]) / g.scale}
    if std > g.std[1] > 0:
        parts["std"] = math.log2(std / g.std[1])
    elif std < g.std[0]:
        parts["std"] = math.log2(g.std[0] / std) if std > 0 else BIG
    width = max(g.high - g.low, g.scale)
    parts["range"] = max(0.0, g.low - float(live["min"]), float(live["max"]) - g.high) / width
    component = max(parts, key=lambda k: parts[k])
    return min(parts[component], BIG), component


class DriftTracker:
    """Rolling windows of sampled layer stats and their drift scores (thread-safe)."""

    def __init__(self, ranges: Mapping[str, GoldenRange], window: int = 20, threshold: float = 1.0) -> None:
        self.ranges = dict(ranges)
        self.window, self.threshold = window, threshold
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    def add(self, rows: Iterable[Row]) -> None:
        """Add one sampled call's rows, stats as dicts (layers the golden record lacks are
        ignored)."""
        self.add_samples([(key, shape, dtype, stats_figures(stats)) for key, shape, dtype, stats in rows])

    def add_samples(self, samples: Iterable[Sample]) -> None:
        """Add one sampled call's samples (:attr:`LayerSampler.samples`)."""
        ranges, windows = self.ranges, self._windows
        with self._lock:
            for key, shape, _dtype, f in samples:
                g = ranges.get(key)
                if g is None or f is None:
                    continue
                mean, std, low, high, nan, inf = f
                if mean is None:
                    if not (nan or inf):
                        continue
                    mean = (g.mean[0] + g.mean[1]) / 2
                ok = (len(shape), shape[-1] if shape else 0) in g.shapes
                w = windows.get(key)
                if w is None:
                    w = windows[key] = _Window(self.window)
                w.rows.append((mean, g.std[0] if std is None else std, g.low if low is None else low,
                               g.high if high is None else high, nan, inf, not ok))

    def layers(self) -> list[LayerDrift]:
        """Every sampled layer's drift, highest score first."""
        with self._lock:
            pooled = [(key, w.pooled(), len(w)) for key, w in self._windows.items() if len(w)]
        out = []
        for key, live, n in pooled:
            g = self.ranges[key]
            value, component = score(g, live)
            live = {k: v for k, v in live.items() if k != "shape_ok"}
            out.append(LayerDrift(key, value, component, n, live, g.to_json()))
        return sorted(out, key=lambda d: -d.score)

    def scores(self) -> dict[str, float]:
        """{layer: drift score} of every sampled layer (what :meth:`layers` scores, without
        building its reports: the request path judges drift with this)."""
        with self._lock:
            pooled = [(key, w.pooled()) for key, w in self._windows.items() if len(w)]
        return {key: score(self.ranges[key], live)[0] for key, live in pooled}

    def out_of_range(self) -> list[LayerDrift]:
        return [d for d in self.layers() if d.score >= self.threshold]
