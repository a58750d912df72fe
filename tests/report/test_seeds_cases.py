"""Intervals of a difference over seeds and cases: scipy for one seed, loops for the rest."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mtunet.report.seeds_cases import SEED_METHODS, seed_bounds, t_seeds_cases, two_level_bootstrap

RNG = np.random.default_rng(3)
_CASES = RNG.beta(8, 2, size=(6, 1, 10))  # 6 studies of 10 cases; 3 and 2 seeds per model
X = _CASES + RNG.normal(0, 0.02, size=(6, 3, 1)) + RNG.normal(0, 0.01, size=(6, 3, 10))
Y = _CASES - 0.02 + RNG.normal(0, 0.02, size=(6, 2, 1)) + RNG.normal(0, 0.01, size=(6, 2, 10))


def test_one_seed_each_is_the_paired_t() -> None:
    x, y = X[:, :1], Y[:, :1]
    res = t_seeds_cases(x, y, 0.95)
    for s in range(x.shape[0]):
        ref = stats.ttest_rel(x[s, 0], y[s, 0])
        ci = ref.confidence_interval(0.95)
        assert res["p_value"][s] == pytest.approx(ref.pvalue, rel=1e-10)
        assert (res["low"][s], res["high"][s]) == pytest.approx((ci.low, ci.high), rel=1e-12)
        assert res["df"][s] == 9


def test_t_seeds_cases_adds_the_variance_parts() -> None:
    res = t_seeds_cases(X, Y, 0.9)
    for s in range(X.shape[0]):
        x, y = X[s], Y[s]
        d = x.mean(axis=0) - y.mean(axis=0)
        parts = [
            (d.var(ddof=1) / 10, 9),
            (x.mean(axis=1).var(ddof=1) / 3, 2),
            (y.mean(axis=1).var(ddof=1) / 2, 1),
        ]
        var = sum(p for p, _ in parts)
        df = var**2 / sum(p * p / f for p, f in parts)
        half = stats.t.ppf(0.95, df) * math.sqrt(var)
        assert res["df"][s] == pytest.approx(df, rel=1e-12)
        assert (res["low"][s], res["high"][s]) == pytest.approx(
            (d.mean() - half, d.mean() + half), rel=1e-12
        )


def _two_level_loop(
    x: np.ndarray, y: np.ndarray, confidence: float, draws: list[tuple[np.ndarray, ...]]
) -> tuple[float, float]:
    """The crossed two-level bootstrap, one resample at a time."""
    stats_b = []
    for sx, sy, cases in draws:
        stats_b.append(np.mean([x[sx, i].mean() - y[sy, i].mean() for i in cases]))
    tail = (1 - confidence) / 2
    low, high = np.quantile(stats_b, [tail, 1 - tail])
    return float(low), float(high)


def test_two_level_bootstrap_matches_the_loop() -> None:
    low, high = two_level_bootstrap(X, Y, 0.95, 300, np.random.default_rng(8))
    rng = np.random.default_rng(8)
    draws = []  # the same draws in the same order: one resample = seeds of x, of y, cases
    sx = rng.integers(0, 3, size=(300, 3))
    sy = rng.integers(0, 2, size=(300, 2))
    cases = rng.integers(0, 10, size=(300, 10))
    draws = [(sx[b], sy[b], cases[b]) for b in range(300)]
    for s in range(X.shape[0]):
        assert (low[s], high[s]) == pytest.approx(_two_level_loop(X[s], Y[s], 0.95, draws))


def test_seed_bounds_methods_and_errors() -> None:
    for m in SEED_METHODS:
        lo, hi = seed_bounds(X, Y, m, 0.95, 400, 1)
        d = X.mean(axis=(1, 2)) - Y.mean(axis=(1, 2))
        assert (lo < d).all() and (d < hi).all(), m
    # t_cases: the paired t of the seed-averaged differences.
    lo, _ = seed_bounds(X, Y, "t_cases", 0.95)
    d = X[0].mean(axis=0) - Y[0].mean(axis=0)
    assert lo[0] == pytest.approx(stats.ttest_1samp(d, 0).confidence_interval(0.95).low)
    with pytest.raises(ValueError, match="unknown seeds-and-cases method"):
        seed_bounds(X, Y, "t", 0.95)
    with pytest.raises(ValueError, match="same cases"):
        seed_bounds(X, Y[:, :, :5], "t_seeds_cases", 0.95)
    with pytest.raises(ValueError, match="NaN"):
        seed_bounds(np.full((2, 3), math.nan), np.zeros((2, 3)), "t_seeds_cases", 0.95)
    with pytest.raises(ValueError, match="confidence"):
        seed_bounds(X, Y, "t_seeds_cases", 1.5)
