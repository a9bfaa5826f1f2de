"""Statistics against data whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from parity.benchmark import stats


def test_quantiles_of_known_data():
    x = list(range(1, 101))  # 1..100
    assert stats.quantile(x, 0.5) == pytest.approx(50.5)
    assert stats.quantile(x, 0.9) == pytest.approx(90.1)
    assert stats.iqr(x) == pytest.approx(75.25 - 25.75)


def test_median_ci_of_ten_samples_is_second_and_ninth_order_statistics():
    # Textbook: for n=10 the distribution-free 95% CI of the median is (X(2), X(9)),
    # coverage 1 - 2*P(B<=1) = 97.85%.
    x = [10, 3, 7, 1, 9, 2, 8, 4, 6, 5]
    assert stats.quantile_ci(x, 0.5) == (2.0, 9.0)


def test_p99_ci_upper_bound_is_unknown_with_few_samples():
    lo, hi = stats.quantile_ci(list(range(50)), 0.99)
    assert hi is None
    assert lo is not None and lo <= 49


def test_ci_covers_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_median = np.log(2)  # exponential(1)
    hits = sum(lo <= true_median <= hi for lo, hi in
               (stats.quantile_ci(rng.exponential(size=60), 0.5) for _ in range(400)))
    assert 0.92 <= hits / 400 <= 0.995


def test_summarize_flags_noise_above_ten_percent_iqr():
    quiet = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01]
    noisy = [1.0, 1.5, 0.6, 1.2, 0.8, 1.4, 0.7, 1.0]
    assert stats.summarize(quiet)["noisy"] is False
    s = stats.summarize(noisy)
    assert s["noisy"] is True
    assert s["n"] == 8 and s["mean"] == pytest.approx(np.mean(noisy))
    assert set(s["ci"]) == {"p50", "p90", "p99", "confidence"}


def test_summarize_rejects_no_samples():
    with pytest.raises(ValueError):
        stats.summarize([])


def test_bootstrap_ratio_finds_a_planted_20_percent_slowdown_and_is_seeded():
    rng = np.random.default_rng(3)
    base = rng.lognormal(0, 0.05, size=300)
    cur = rng.lognormal(0, 0.05, size=300) * 1.2
    ratio, lo, hi = stats.bootstrap_median_ratio(cur, base, seed=1)
    assert lo < ratio < hi
    assert lo > 1.15 and hi < 1.25
    assert stats.bootstrap_median_ratio(cur, base, seed=1) == (ratio, lo, hi)


def test_bootstrap_ratio_of_identical_distributions_straddles_one():
    rng = np.random.default_rng(4)
    a, b = rng.lognormal(size=500), rng.lognormal(size=500)
    _, lo, hi = stats.bootstrap_median_ratio(a, b)
    assert lo < 1 < hi


@pytest.mark.parametrize("n", [1001, 3000])
def test_rank_bootstrap_matches_direct_resampling_for_large_samples(n, monkeypatch):
    x = np.random.default_rng(n).lognormal(size=n)
    by_rank = stats._bootstrap_medians(x, 2000, np.random.default_rng(0))
    monkeypatch.setattr(stats, "_DIRECT_BOOTSTRAP_LIMIT", 10**9)
    direct = stats._bootstrap_medians(x, 2000, np.random.default_rng(0))
    spread = np.quantile(direct, 0.975) - np.quantile(direct, 0.025)
    for q in (0.025, 0.5, 0.975):
        assert abs(np.quantile(by_rank, q) - np.quantile(direct, q)) < 0.1 * spread
