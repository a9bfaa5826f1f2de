"""Statistics over raw per-call timings: quantiles with confidence intervals, spread,
and a seeded, vectorised bootstrap for the ratio of two medians.

Everything takes plain sequences of seconds and returns plain floats, so a stored
``parity.bench/1`` file can be re-summarised without the code that measured it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: IQR/median above this marks a timing as noisy (torch.utils.benchmark's threshold).
NOISY_IQR_RATIO = 0.10

#: Quantiles every stage summary reports, by name.
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}

# Keeps one bootstrap block under ~32 MB of float64 whatever the sample count.
_BOOTSTRAP_BLOCK_ELEMENTS = 4_000_000
_DIRECT_BOOTSTRAP_LIMIT = 1000


def quantile(samples: ArrayLike, q: float) -> float:
    """The ``q`` quantile (0..1) with linear interpolation (numpy's default)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("quantile of no samples")
    return float(np.quantile(x, q))


def quantile_ci(samples: ArrayLike, q: float, confidence: float = 0.95) -> tuple[float | None, float | None]:
    """Distribution-free confidence interval for the ``q`` quantile from order statistics.

    Uses the exact binomial distribution of how many samples fall below the true
    quantile, so it holds for any timing distribution (no normality assumed). A bound
    is ``None`` when there are too few samples to support it (e.g. the upper bound of
    p99 from 50 calls): the honest answer is "unknown", not the sample maximum.
    """
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    if n == 0:
        raise ValueError("confidence interval of no samples")
    lo_rank, hi_rank = _order_statistic_ranks(n, q, confidence)
    lo = float(x[lo_rank - 1]) if lo_rank is not None else None
    hi = float(x[hi_rank - 1]) if hi_rank is not None else None
    return lo, hi


def _order_statistic_ranks(n: int, q: float, confidence: float) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) with P(X_(l) <= quantile <= X_(u)) >= confidence, tails split evenly.

    ``None`` for a side whose tail probability alone already exceeds alpha/2.
    """
    alpha = (1.0 - confidence) / 2.0
    cdf = _binomial_cdf(n, q)  # cdf[k] = P(B <= k), B ~ Binomial(n, q) samples below the quantile
    # Lower: largest l with P(B <= l-1) <= alpha, i.e. X_(l) <= quantile with prob >= 1-alpha.
    below = np.nonzero(cdf[:-1] <= alpha)[0]
    lo = int(below[-1]) + 1 if len(below) else None
    # Upper: smallest u with P(B >= u) <= alpha, i.e. P(B <= u-1) >= 1-alpha.
    above = np.nonzero(cdf >= 1.0 - alpha)[0]
    hi = int(above[0]) + 1 if len(above) and int(above[0]) + 1 <= n else None
    return lo, hi


def _binomial_cdf(n: int, p: float) -> Any:
    """P(B <= k) for k = 0..n, computed in log space so large n does not overflow."""
    k = np.arange(n + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    log_comb = lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0)
    with np.errstate(divide="ignore"):
        log_pmf = log_comb + k * np.log(p) + (n - k) * np.log1p(-p)
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def iqr(samples: ArrayLike) -> float:
    """Interquartile range (p75 - p25), in the samples' unit."""
    x = np.asarray(samples, dtype=np.float64)
    return float(np.quantile(x, 0.75) - np.quantile(x, 0.25))


def summarize(samples: ArrayLike, confidence: float = 0.95) -> dict[str, Any]:
    """Summary of one stage's per-call seconds: quantiles with CIs, mean, spread, noise flag.

    ``noisy`` is true when IQR/median exceeds :data:`NOISY_IQR_RATIO`; such figures
    should not be trusted for small differences.
    """
    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0:
        raise ValueError("summary of no samples")
    out: dict[str, Any] = {name: quantile(x, q) for name, q in QUANTILES.items()}
    out["ci"] = {name: list(quantile_ci(x, q, confidence)) for name, q in QUANTILES.items()}
    out["ci"]["confidence"] = confidence
    spread = iqr(x)
    out.update(
        n=len(x),
        mean=float(x.mean()),
        std=float(x.std(ddof=1)) if len(x) > 1 else 0.0,
        min=float(x.min()),
        max=float(x.max()),
        iqr=spread,
        noisy=bool(out["p50"] > 0 and spread / out["p50"] > NOISY_IQR_RATIO),
    )
    return out


def bootstrap_median_ratio(
    current: ArrayLike,
    baseline: ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Ratio median(current)/median(baseline) and its percentile-bootstrap CI.

    Both sample sets are resampled independently, ``n_boot`` times, with a fixed
    ``seed`` so the same files always give the same verdict. Returns
    ``(ratio, low, high)``; a ratio above 1 means current is slower.
    """
    cur = np.asarray(current, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    if len(cur) == 0 or len(base) == 0:
        raise ValueError("bootstrap of no samples")
    rng = np.random.default_rng(seed)
    cur_medians = _bootstrap_medians(cur, n_boot, rng)
    base_medians = _bootstrap_medians(base, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = cur_medians / base_medians
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(ratios, [alpha, 1.0 - alpha])
    point = float(np.median(cur) / np.median(base)) if np.median(base) > 0 else math.inf
    return point, float(low), float(high)


def _bootstrap_medians(x: Any, n_boot: int, rng: np.random.Generator) -> Any:
    """Medians of ``n_boot`` bootstrap resamples of ``x``.

    Up to :data:`_DIRECT_BOOTSTRAP_LIMIT` samples, resamples are drawn and their medians
    taken (in blocks, to bound memory). Above it, drawing n x n_boot values costs
    seconds, so the resample median's *rank* is drawn instead: the number of resampled
    values <= the j-th smallest is Binomial(n, j/n), which for such n is normal to
    well within one rank. The resample median is then the lower middle order
    statistic, a difference of one adjacent sample.
    """
    if len(x) > _DIRECT_BOOTSTRAP_LIMIT:
        return _bootstrap_medians_by_rank(np.sort(x), n_boot, rng)
    block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // len(x))
    parts = []
    for start in range(0, n_boot, block):
        rows = min(block, n_boot - start)
        idx = rng.integers(0, len(x), size=(rows, len(x)))
        parts.append(np.median(x[idx], axis=1))
    return np.concatenate(parts)


def _bootstrap_medians_by_rank(sorted_x: Any, n_boot: int, rng: np.random.Generator) -> Any:
    n = len(sorted_x)
    k = (n + 1) // 2  # 1-based rank of the lower median
    p = np.arange(1, n + 1, dtype=np.float64) / n
    # P(resample median <= x_(j)) = P(Binomial(n, p_j) >= k), continuity-corrected normal.
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (n * p - k + 0.5) / np.sqrt(n * p * (1.0 - p))
    z[-1] = np.inf
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    ranks = np.searchsorted(cdf, rng.random(n_boot), side="left")
    return sorted_x[np.minimum(ranks, n - 1)]


_erf = np.vectorize(math.erf, otypes=[np.float64])
