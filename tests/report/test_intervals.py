"""Intervals of a mean, vectorised over samples: scipy's, and a bootstrap-t against loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mtunet.report.intervals import (
    METHODS,
    bootstrap_t_bounds,
    mean_bounds,
    mean_interval,
    order_statistic,
    t_bounds,
)

DATA = np.random.default_rng(0).beta(5, 2, size=(40, 9))  # 40 samples of 9 Dice-like scores


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_t_bounds_match_scipy(confidence: float) -> None:
    low, high = t_bounds(DATA, confidence)
    for s in (0, 17, 39):
        x = DATA[s]
        ref = stats.t.interval(confidence, x.size - 1, loc=x.mean(), scale=stats.sem(x))
        assert (low[s], high[s]) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize(
    ("method", "name"), [("percentile", "percentile"), ("basic", "basic"), ("bca", "BCa")]
)
def test_bootstrap_bounds_are_scipys(method: str, name: str) -> None:
    # One index draw per batch is shared by all samples, so a sample's interval equals
    # scipy's on that sample alone with the same generator.
    low, high = mean_bounds(DATA, [method], 0.95, 999, np.random.default_rng(5))[method]
    for s in (0, 7, 39):
        ref = stats.bootstrap(
            (DATA[s],), np.mean, method=name, n_resamples=999, rng=np.random.default_rng(5)
        ).confidence_interval
        # BCa's bias correction counts resampled means below the sample's: a mean summed in
        # another order (last bit) can move a tie, and the interval by a hair.
        tol = 1e-12 if method != "bca" else 1e-3 * (ref.high - ref.low)
        assert (low[s], high[s]) == pytest.approx((ref.low, ref.high), rel=1e-12, abs=tol)


def _bootstrap_t_loop(x: np.ndarray, confidence: float, idx: np.ndarray) -> tuple[float, float]:
    """The studentized bootstrap written out: one resample at a time, order statistics."""
    n, b = x.size, idx.shape[0]
    m, se = x.mean(), x.std(ddof=1) / math.sqrt(n)
    t = []
    for row in idx:
        r = x[row]
        se_b = r.std(ddof=1) / math.sqrt(n)
        if se_b > 0:
            t.append((r.mean() - m) / se_b)
        else:
            t.append(0.0 if r.mean() == m else math.copysign(math.inf, r.mean() - m))
    t.sort()
    tail = (1 - confidence) / 2
    q_low = t[round(tail * b) - 1]  # tail * b is a whole number in these tests
    q_high = t[round((1 - tail) * b) - 1]
    return m - q_high * se, m - q_low * se


@pytest.mark.parametrize(("n", "confidence"), [(4, 0.95), (4, 0.99), (9, 0.9), (9, 0.99)])
def test_bootstrap_t_matches_the_loop(n: int, confidence: float) -> None:
    data = DATA[:, :n]
    low, high = bootstrap_t_bounds(data, confidence, 800, np.random.default_rng(2))
    idx = np.random.default_rng(2).integers(0, n, size=(800, n))  # the same draws, at once
    for s in range(data.shape[0]):
        assert (low[s], high[s]) == pytest.approx(_bootstrap_t_loop(data[s], confidence, idx))
    # At 4 cases 1 resample in 64 has no spread (t* infinite): at 99 % the quantiles fall
    # among them for some samples, and those intervals are unbounded, never NaN.
    assert not np.isnan(low).any() and not np.isnan(high).any()
    if (n, confidence) == (4, 0.99):
        assert np.isinf(high - low).any()


def test_order_statistic() -> None:
    assert order_statistic(0.025, 2000) == 49  # the 50th of 2000
    assert order_statistic(0.975, 2000) == 1949
    assert order_statistic(0.025, 10) == 0 and order_statistic(0.999, 10) == 9
    assert order_statistic(0.0, 10) == 0 and order_statistic(1.0, 10) == 9


def test_bootstrap_t_batches_do_not_change_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    import mtunet.report.intervals as intervals

    whole = bootstrap_t_bounds(DATA, 0.95, 500, np.random.default_rng(9))
    monkeypatch.setattr(intervals, "_MAX_ELEMENTS", DATA.size * 7)  # 7 resamples per step
    batched = bootstrap_t_bounds(DATA, 0.95, 500, np.random.default_rng(9))
    np.testing.assert_allclose(batched, whole, rtol=1e-13)


def test_a_seed_gives_the_same_intervals_and_another_seed_others() -> None:
    a = mean_bounds(DATA, METHODS, 0.95, 300, 4)
    b = mean_bounds(DATA, METHODS, 0.95, 300, 4)
    c = mean_bounds(DATA, METHODS, 0.95, 300, 5)
    for m in METHODS:
        np.testing.assert_array_equal(a[m], b[m])
        if m != "t":
            assert not np.array_equal(a[m], c[m])
    assert list(a) == list(METHODS)


def test_intervals_hold_the_mean_and_widen_with_the_level() -> None:
    for m in METHODS:
        lo, hi = mean_interval(DATA[3], m, 0.9, 2000, 1)
        lo99, hi99 = mean_interval(DATA[3], m, 0.99, 2000, 1)
        assert lo < DATA[3].mean() < hi, m
        assert lo99 < lo and hi < hi99, m


def test_degenerate_samples_and_bad_input() -> None:
    flat = np.vstack([np.full(6, 0.7), DATA[0, :6]])
    for m, (lo, hi) in mean_bounds(flat, METHODS, 0.95, 200, 0).items():
        assert lo[0] == hi[0] == pytest.approx(0.7), m  # no spread: the value, no NaN
        assert lo[1] < hi[1], m
    for m, (lo, hi) in mean_bounds(DATA[:, :1], METHODS, 0.95, 200, 0).items():
        assert np.isnan(lo).all() and np.isnan(hi).all(), m  # one value: no interval
    with pytest.raises(ValueError, match="unknown interval method"):
        mean_bounds(DATA, ["wald"], 0.95, 100, 0)
    with pytest.raises(ValueError, match="confidence"):
        mean_bounds(DATA, ["t"], 95, 100, 0)
    with pytest.raises(ValueError, match="NaN"):
        mean_bounds(np.array([0.5, math.nan]), ["t"], 0.95, 100, 0)
    with pytest.raises(ValueError, match="n_resamples"):
        mean_bounds(DATA, ["bca"], 0.95, 0, 0)
    with pytest.raises(ValueError, match="1-D"):
        mean_interval(DATA, "t", 0.95, 100, 0)
