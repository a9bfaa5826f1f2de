"""The sketch test of capture=stats: a whole-tensor check from two linear sketches.

Each stats entry may carry a count-sketch of the layer's values (``entry["sketch"]``,
written by :mod:`parity.records.stats`; definition and derivation in
docs/stats-sketch.md): 4 rows of 16 buckets, each bucket a sum of its elements with
random signs, and beside it, per bucket, the sum of ``a^2`` of the elements it holds.
Sketches are linear, so ``sketch(A) - sketch(B)`` is the sketch of ``A - B`` and each
row's sum of squares estimates ``||A - B||_2^2``.

If every element were within tolerance (``|a - b| <= max(atol, rtol*|a|)``, the rule of
:mod:`parity.comparison.metrics`), bucket k's signed sum would be sub-Gaussian with
variance proxy at most ``V_k = n_k*atol^2 + rtol^2*sum_k a^2`` (as ``max(x, y)^2 <=
x^2 + y^2``; tighter than the ``(atol + rtol*|a|)^2`` of the issue), so a row's sum of
squares ``X`` obeys the Chernoff bound ``P(X > x) <= exp(-lam*x) * prod_k
(1 - 2*lam*V_k)^(-1/2)``. A row is *over* when its ``X`` (less the rounding of the
stored sketch) exceeds the ``x`` at which that bound is ``ROW_FALSE_ALARM``; the tensor
has *diverged* when 3 of the 4 rows are over (the lower median), which happens with
every element within tolerance with probability at most ``FALSE_ALARM``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from parity.comparison.metrics import TensorMetrics
from parity.comparison.tolerances import Tolerance
from parity.records.stats import SKETCH_SCHEME, decode_sketch

#: P(one row over | every element within tolerance), by the Chernoff bound
ROW_FALSE_ALARM = 6e-3
ROWS = 4
NEEDED = ROWS - (ROWS - 1) // 2  # rows over for the lower median to be over: 3 of 4
#: P(diverged | every element within tolerance): the rows' signs are independent
FALSE_ALARM = sum(math.comb(ROWS, k) * ROW_FALSE_ALARM ** k * (1 - ROW_FALSE_ALARM) ** (ROWS - k)
                  for k in range(NEEDED, ROWS + 1))
_F32 = 2.0 ** -24  # float32 rounding of the stored sketch values (relative)
_F64 = 2.0 ** -53  # one double addition inside the sketch (relative)
_MAGNITUDES = 1 + 2.0 ** -15  # the buckets' a^2 sums: float32 lane sums of <= 256 terms, stored as float32
_CONVERTED = 2.0 ** -22  # extra rtol for dtypes the sketch rounds to float32 (float64)
_EXACT_IN_F32 = ("float32", "float16", "bfloat16")
_CHUNK, _BLOCK = 16, 4096
# lam = t / (2 max V): t on a grid in (0, 1); any t gives a valid bound, the grid's best is kept
_T = 1.0 - np.geomspace(1e-7, 0.999, 400)


@dataclass(frozen=True)
class SketchCheck:
    """One (batch, key) pair's sketch test. Norms are L2 over the whole tensor."""

    estimate: float  # median over rows of ||row of sketch(A) - sketch(B)||: estimates ||A - B||
    limit: float  # median over rows of the norm a row must exceed to be over
    rows_over: int
    norm_a: float
    norm_b: float

    @property
    def diverged(self) -> bool:
        return self.rows_over >= NEEDED

    @property
    def rel_l2(self) -> float:
        """Estimated ``||A - B|| / ||A||``."""
        if self.norm_a == 0.0:
            return 0.0 if self.estimate == 0.0 else math.inf
        return self.estimate / self.norm_a

    @property
    def limit_rel_l2(self) -> float:
        return self.limit / self.norm_a if self.norm_a else math.inf

    def note(self) -> str:
        return (f"sketch: estimated relative L2 error {self.rel_l2:.3g} over the whole tensor, above the "
                f"{self.limit_rel_l2:.3g} that elements within tolerance allow ({self.rows_over} of {ROWS} rows; "
                f"false alarm <= {FALSE_ALARM:.0e})")

    def into(self, m: TensorMetrics) -> TensorMetrics:
        """``m`` (from the sample) with the whole-tensor estimates: rel_l2 and cosine come
        from the sketch; max_abs and mismatches stay the sample's."""
        a2, b2, d2 = self.norm_a ** 2, self.norm_b ** 2, self.estimate ** 2
        return replace(m, sum_sq_diff=d2, sum_sq_a=a2, sum_sq_b=b2, dot_ab=(a2 + b2 - d2) / 2)

    def to_json(self) -> dict[str, Any]:
        return {"rel_l2": _finite(self.rel_l2), "limit_rel_l2": _finite(self.limit_rel_l2),
                "rows_over": self.rows_over, "diverged": self.diverged}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def merge(a: dict[str, Any] | None, b: SketchCheck) -> dict[str, Any]:
    """A row's ``sketch`` JSON over its batches: the largest estimate, diverged if any batch is."""
    new = b.to_json()
    if a is None:
        return new
    worse = new if (new["rel_l2"] or 0.0) > (a["rel_l2"] or 0.0) else a
    return {**worse, "diverged": bool(a["diverged"] or new["diverged"])}


def check(ea: dict[str, Any], eb: dict[str, Any], tol: Tolerance) -> SketchCheck | None:
    """The sketch test of A's and B's entries, or None when it cannot be made: a side
    without a sketch (older records, capture=full, non-float or non-finite tensors),
    another scheme or seed, different shapes, or stats without ``l1``/``l2``."""
    ska, skb = ea.get("sketch"), eb.get("sketch")
    if not (isinstance(ska, dict) and isinstance(skb, dict)):
        return None
    if ska.get("scheme") != SKETCH_SCHEME or skb.get("scheme") != SKETCH_SCHEME or ska.get("seed") != skb.get("seed"):
        return None
    sa, sb, shape = ea.get("stats"), eb.get("stats"), ea.get("shape")
    if not (isinstance(sa, dict) and isinstance(sb, dict) and isinstance(shape, list) and shape == eb.get("shape")):
        return None
    try:
        l1a, l2a, l1b, l2b = (float(s[k]) for s in (sa, sb) for k in ("l1", "l2"))
    except (KeyError, TypeError, ValueError):
        return None
    n = math.prod(int(d) for d in shape)
    (va, sq_a), (vb, _) = decode_sketch(ska), decode_sketch(skb)
    rtol = tol.rtol + (0.0 if str(ea.get("dtype")) in _EXACT_IN_F32 else _CONVERTED)
    # elements per bucket: every whole block gives each bucket one lane of 256; the rest, at most a lane
    per_bucket = (n // _BLOCK) * (_BLOCK // _CHUNK) + -(-(n % _BLOCK) // _CHUNK)
    v = per_bucket * tol.atol ** 2 + rtol ** 2 * sq_a * _MAGNITUDES
    diff = np.sqrt(((va - vb) ** 2).sum(axis=1))
    # a row's stored difference may exceed the true one by the float32 storage and the double sums
    slack = (_F32 * (1 + _F32) * (np.sqrt((va ** 2).sum(axis=1)) + np.sqrt((vb ** 2).sum(axis=1)))
             + (272 + -(-n // _BLOCK)) * _F64 * (l1a + l1b))
    lows = np.maximum(diff - slack, 0.0)
    limits = np.sqrt(np.array([_threshold(row) for row in v]))
    return SketchCheck(estimate=float(np.median(diff)), limit=float(np.median(limits)),
                       rows_over=int((lows > limits).sum()), norm_a=l2a, norm_b=l2b)


def _threshold(v: Any) -> float:
    """The ``x`` at which the Chernoff bound of a row with bucket proxies ``v`` is
    ROW_FALSE_ALARM: ``min over lam of (log(1/p) - sum log(1 - 2 lam v_k) / 2) / lam``."""
    top = float(v.max())
    if top <= 0.0:
        return 0.0
    lam = _T / (2 * top)
    log_mgf = -0.5 * np.log1p(-np.outer(lam, v) * 2).sum(axis=1)
    return float(((log_mgf - math.log(ROW_FALSE_ALARM)) / lam).min())
