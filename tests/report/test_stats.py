"""The report's statistics against scipy / numpy and hand-computed numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sst

from mtunet.report.stats import (
    bootstrap_interval,
    describe_difference,
    format_p,
    holm,
    paired_difference,
    t_interval,
)

# Fixed, skewed per-case scores: a percentile bootstrap and a basic (reverse) one or a
# normal/t interval give clearly different intervals on skewed data.
CASES = np.random.default_rng(2024).lognormal(0.0, 0.9, size=30)


# --------------------------------------------------------------------------------------
# t_interval
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[0.81, 0.79, 0.84], [71.2, 69.5, 70.1, 72.3, 70.8], CASES])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_interval_matches_scipy(values: list[float], confidence: float) -> None:
    x = np.asarray(values, dtype=float)
    low, high = sst.t.interval(confidence, x.size - 1, loc=x.mean(), scale=sst.sem(x))
    mean, lo, hi = t_interval(x, confidence)
    assert mean == pytest.approx(x.mean(), rel=1e-14)
    assert (lo, hi) == pytest.approx((low, high), rel=1e-12)


def test_t_interval_degenerate() -> None:
    mean, lo, hi = t_interval([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)
    assert t_interval([0.1, 0.1, 0.1]) == (0.1, 0.1, 0.1)  # no NaN from 0/0
    with pytest.raises(ValueError, match="no values"):
        t_interval([])
    with pytest.raises(ValueError, match="NaN"):
        t_interval([0.5, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        t_interval([0.5, 0.6], confidence=95)


# --------------------------------------------------------------------------------------
# bootstrap_interval
# --------------------------------------------------------------------------------------


def test_bootstrap_interval_matches_scipy_percentile() -> None:
    n = 100_000
    mean, lo, hi = bootstrap_interval(CASES, n_resamples=n, seed=1)
    ref = sst.bootstrap(
        (CASES,), np.mean, method="percentile", n_resamples=n, rng=np.random.default_rng(7)
    ).confidence_interval
    width = ref.high - ref.low
    # Different random streams: Monte Carlo error only (under 0.5% of the width here).
    assert mean == pytest.approx(CASES.mean(), rel=1e-14)
    assert abs(lo - ref.low) < 0.01 * width and abs(hi - ref.high) < 0.01 * width
    # A wrong method would be far outside that tolerance on these skewed data.
    basic = sst.bootstrap(
        (CASES,), np.mean, method="basic", n_resamples=n, rng=np.random.default_rng(7)
    ).confidence_interval
    t_lo, t_hi = t_interval(CASES)[1:]
    for other in ((basic.low, basic.high), (t_lo, t_hi)):
        assert max(abs(lo - other[0]), abs(hi - other[1])) > 0.05 * width


def test_bootstrap_interval_is_the_percentiles_of_resample_means() -> None:
    # The definition, written out: same generator, same draws, numpy's linear percentiles.
    x = CASES[:12]
    rng = np.random.default_rng(3)
    means = x[rng.integers(0, x.size, size=(500, x.size))].mean(axis=1)
    ref = np.percentile(means, [5.0, 95.0])
    assert bootstrap_interval(x, confidence=0.9, n_resamples=500, seed=3)[1:] == tuple(ref)


def test_bootstrap_interval_seeds_coverage_and_degenerate_input() -> None:
    a = bootstrap_interval(CASES, seed=5)
    assert a == bootstrap_interval(CASES, seed=5)  # reproducible
    assert a != bootstrap_interval(CASES, seed=6)
    mean, lo, hi = a
    assert CASES.min() < lo < mean < hi < CASES.max()
    # A higher confidence gives a wider interval.
    _, lo99, hi99 = bootstrap_interval(CASES, confidence=0.99, seed=5)
    assert lo99 < lo and hi < hi99
    assert bootstrap_interval([0.42]) == (0.42, 0.42, 0.42)
    assert bootstrap_interval([0.1] * 7) == (0.1, 0.1, 0.1)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_interval([0.3, math.nan, 0.5])
    with pytest.raises(ValueError, match="no values"):
        bootstrap_interval(np.array([]))
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval(CASES, n_resamples=0)


def test_bootstrap_interval_coverage_on_simulated_data() -> None:
    # Roughly nominal coverage of the true mean (0.5) for n = 40 uniform scores.
    rng = np.random.default_rng(0)
    hits = 0
    trials = 200
    for i in range(trials):
        _, lo, hi = bootstrap_interval(rng.random(40), n_resamples=2000, seed=i)
        hits += lo <= 0.5 <= hi
    assert 0.88 <= hits / trials <= 0.99


def test_bootstrap_interval_large_input_is_chunked_and_fast() -> None:
    import time

    x = np.random.default_rng(1).normal(size=30)
    start = time.perf_counter()
    bootstrap_interval(x)
    assert time.perf_counter() - start < 1.0  # vectorised (a few ms)
    big = np.random.default_rng(2).normal(size=200_000)  # drawn 20 resamples at a time
    mean, lo, hi = bootstrap_interval(big, n_resamples=50)
    assert lo < mean < hi and hi - lo < 0.05


# --------------------------------------------------------------------------------------
# paired_difference
# --------------------------------------------------------------------------------------


def test_paired_difference_matches_scipy_and_the_bootstrap() -> None:
    rng = np.random.default_rng(11)
    a = rng.uniform(0.6, 0.9, size=25)
    b = a - rng.normal(0.02, 0.03, size=25)  # continuous: no ties, no zero differences
    out = paired_difference(a, b, seed=4)
    assert out["n"] == 25
    assert out["diff"] == pytest.approx(np.mean(a - b), rel=1e-14)
    assert out["p_value"] == sst.wilcoxon(a - b).pvalue
    assert (out["diff"], out["ci_low"], out["ci_high"]) == bootstrap_interval(a - b, seed=4)
    # Swapping the methods mirrors the difference and keeps the p-value.
    swapped = paired_difference(b, a, seed=4)
    assert swapped["diff"] == pytest.approx(-out["diff"])
    assert swapped["p_value"] == pytest.approx(out["p_value"])


def test_paired_difference_degenerate_cases() -> None:
    same = paired_difference([0.8, 0.7, 0.9], [0.8, 0.7, 0.9])
    assert same == {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "n": 3}
    one = paired_difference([0.9], [0.7])
    assert one["n"] == 1 and one["p_value"] == 1.0
    assert one["diff"] == one["ci_low"] == one["ci_high"] == pytest.approx(0.2)
    # Ties and zero differences: scipy falls back to its approximation, no warning leaks.
    with_ties = paired_difference([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 3.0, 3.0, 4.0])
    assert 0.0 < with_ties["p_value"] <= 1.0
    with pytest.raises(ValueError, match="lengths differ"):
        paired_difference([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="no values"):
        paired_difference([], [])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([0.1, math.nan], [0.1, 0.2])


# --------------------------------------------------------------------------------------
# holm
# --------------------------------------------------------------------------------------


def _holm_loop(p: list[float]) -> list[float]:
    """Holm's step-down procedure written out with plain loops."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_holm_hand_example_and_loop() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.2, 0.5, 0.9]) == pytest.approx([0.6, 1.0, 1.0])  # capped at 1
    assert holm([0.04]) == [0.04]
    assert holm([]) == []
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = list(rng.random(int(rng.integers(1, 12))) ** 3)
        p += p[:2]  # some ties
        out = holm(p)
        assert out == pytest.approx(_holm_loop(p))
        assert all(o >= q for o, q in zip(out, p, strict=True))
    with pytest.raises(ValueError, match="p_values"):
        holm([0.1, 1.5])
    with pytest.raises(ValueError, match="p_values"):
        holm([math.nan])


# --------------------------------------------------------------------------------------
# describe_difference
# --------------------------------------------------------------------------------------


def test_describe_difference() -> None:
    assert describe_difference(0.41, (-0.32, 1.1), 0.43) == (
        "not significant (+0.41, 95% CI -0.32 to 1.10; p = 0.43 after Holm)"
    )
    assert describe_difference(-2.1, (-3.0, -1.2), 0.002).startswith("significantly lower, worse")
    # HD95: lower is better.
    hd = describe_difference(-2.1, (-3.0, -1.2), 0.0004, higher_is_better=False)
    assert hd.startswith("significantly lower, better") and "p < 0.001" in hd
    assert describe_difference(1.5, (0.5, 2.5), 0.01).startswith("significantly higher, better")
    assert "includes 0" in describe_difference(0.2, (-0.1, 0.5), 0.01)
    assert format_p(0.0432) == "p = 0.043" and format_p(math.nan) == "p = n/a"


def test_significance_is_decided_by_holm_p_then_the_mean_interval() -> None:
    from mtunet.report.stats import significance

    assert significance(2.0, 1.0, 3.0, 0.05) == "none"  # p must be below alpha
    assert significance(2.0, 1.0, 3.0, float("nan")) == "none"
    assert significance(2.0, -1.0, 3.0, 0.01) == "unclear"
    assert significance(0.0, 0.0, 0.0, 0.01) == "unclear"
    assert significance(float("nan"), 1.0, 3.0, 0.01) == "unclear"
    assert significance(2.0, float("nan"), float("nan"), 0.01) == "higher"
    assert significance(-2.0, -3.0, -1.0, 0.01) == "lower"
